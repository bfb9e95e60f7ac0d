`timescale 1ns / 1ps
`include "rram_defines.vh"
// Pattern / frame generator of the sequencer: word `w` (0..63) of a BL chain frame in which rows lo..hi
// get nibble `nib_in` and every other row `nib_out` (a nibble is {INH, C, B, A} of the row's CD4051B, protocol.toml
// [word.CHAIN_NIBBLE], NB = 4 bits).  Layout (docs/protocol.md): the nibble of row m = ARRAY_LINES - 1 - 8w - i
// (511 - 8w - i) sits at bits 31-4i (31 - NB i) of word w.
module rram_pattern (
    input  wire [`RRAM_FRAME_WORD_INDEX_WIDTH-1:0] w,
    input  wire [`RRAM_ROW_INDEX_WIDTH-1:0] lo,
    input  wire [`RRAM_ROW_INDEX_WIDTH-1:0] hi,
    input  wire [`RRAM_CHAIN_NIBBLE_BITS-1:0] nib_in,
    input  wire [`RRAM_CHAIN_NIBBLE_BITS-1:0] nib_out,
    output reg  [31:0] word
);
    `include "rram_protocol.vh"
    localparam integer NB = `RRAM_CHAIN_NIBBLE_BITS;
    localparam integer LPW = 32 / NB;  // lines (nibbles) per chain word
    integer i;
    localparam integer RW = `RRAM_ROW_INDEX_WIDTH;  // a row (line) number
    reg [RW-1:0] m;
    always @* begin
        word = '0;
        m = '0;
        for (i = 0; i < LPW; i = i + 1) begin
            m = RW'(ARRAY_LINES) - RW'(1) - (RW'(w) << $clog2(LPW)) - RW'(i);  // line of nibble i: 511 - 8w - i
            word[31 - NB * i -: NB] = (m >= lo && m <= hi) ? nib_in : nib_out;
        end
    end
endmodule
