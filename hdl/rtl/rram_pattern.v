`timescale 1ns / 1ps
// Pattern / frame generator of the sequencer: word `w` (0..63) of a BL chain frame in which rows lo..hi
// get nibble `nib_in` and every other row `nib_out` (a nibble is {INH, C, B, A} of the row's CD4051B).
// Layout (docs/protocol.md): the nibble of row m = ARRAY_LINES - 1 - 8w - i (511 - 8w - i) sits at bits 31-4i of
// word w.
module rram_pattern (
    input  wire [6:0]  w,
    input  wire [15:0] lo,
    input  wire [15:0] hi,
    input  wire [3:0]  nib_in,
    input  wire [3:0]  nib_out,
    output reg  [31:0] word
);
    `include "rram_protocol.vh"
    integer i;
    reg [15:0] m;
    always @* begin
        word = 32'd0;
        m = 16'd0;
        for (i = 0; i < 8; i = i + 1) begin
            m = 16'(ARRAY_LINES) - 16'd1 - {6'd0, w, 3'd0} - 16'(i);
            word[31 - 4 * i -: 4] = (m >= lo && m <= hi) ? nib_in : nib_out;
        end
    end
endmodule
