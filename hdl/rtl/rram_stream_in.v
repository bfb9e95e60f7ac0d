`timescale 1ns / 1ps
`include "rram_defines.vh"
// AXI-Stream slave of the sequencer (MM2S): word fetch and drain.  Handshake with the sequencer:
// while `fetch` is high TREADY is high, and `take` is high on the clock a word is accepted; from the next
// clock `word` holds it and `premature` tells whether it carried TLAST before the operation had all its
// `need` words (UNDERRUN).  While `drain` is high every word is accepted and dropped; `drained` is high
// on the clock the word with TLAST goes.  `open`: a word was taken and the packet's TLAST has not come (the
// rest of the packet is drained at the end of the operation).  `start` (an accepted START) loads `need`.
module rram_stream_in (
    input  wire        clk,
    input  wire        rst_n,
    input  wire        start,
    input  wire [`RRAM_STREAM_NEED_WIDTH-1:0] need,
    input  wire        fetch,
    input  wire        drain,
    output wire        take,
    output wire        drained,
    output reg  [31:0] word,
    output reg         premature,
    output wire        open,
    input  wire [31:0] s_tdata,
    input  wire        s_tvalid,
    input  wire        s_tlast,
    output wire        s_tready
);
    reg [`RRAM_STREAM_NEED_WIDTH-1:0] left;  // words the operation still needs
    reg taken;  // a word of this operation was taken
    reg last;  // ... and it carried TLAST
    assign s_tready = fetch || drain;
    assign take = fetch && s_tvalid;
    assign drained = drain && s_tvalid && s_tlast;
    assign open = taken && !last;
    always @(posedge clk or negedge rst_n) begin
        if (!rst_n) begin
            left <= '0;
            taken <= 1'b0;
            word <= '0;
            last <= 1'b0;
            premature <= 1'b0;
        end else if (start) begin
            left <= need;
            taken <= 1'b0;
            last <= 1'b0;
        end else if (take) begin
            word <= s_tdata;
            last <= s_tlast;
            taken <= 1'b1;
            premature <= s_tlast && left != `RRAM_STREAM_NEED_WIDTH'(1);
            left <= left - 1'b1;
        end
    end
endmodule
