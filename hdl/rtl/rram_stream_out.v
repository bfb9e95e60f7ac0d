`timescale 1ns / 1ps
`include "rram_defines.vh"
// AXI-Stream master of the sequencer (S2MM) with a one-word holding register, so that TLAST always marks
// the last word of an operation, also when it fails part-way.  Handshake with the sequencer: `ready` is
// high when the output register is free (TVALID low or taken on this clock).  `push` with `ready`: the
// held word goes out (TLAST low) and `data` is held in its place (`count` + 1).  `flush` with `ready`:
// the held word, if any, goes out with TLAST.  `empty`: nothing held and nothing on the bus.
// `abort` drops both (TVALID falls: the host resets its DMA); `start` (an accepted START) clears `count`.
module rram_stream_out (
    input  wire        clk,
    input  wire        rst_n,
    input  wire        start,
    input  wire        abort,
    input  wire        push,
    input  wire [31:0] data,
    input  wire        flush,
    output wire        ready,
    output wire        empty,
    output reg  [`RRAM_OUT_WORDS_COUNT_WIDTH-1:0] count,  // OUT_WORDS
    output reg  [31:0] m_tdata,
    output reg         m_tvalid,
    output reg         m_tlast,
    input  wire        m_tready
);
    reg hold_v;
    reg [31:0] hold_d;
    assign ready = !m_tvalid || m_tready;
    assign empty = !m_tvalid && !hold_v;
    always @(posedge clk or negedge rst_n) begin
        if (!rst_n) begin
            count <= '0;
            m_tdata <= '0;
            m_tvalid <= 1'b0;
            m_tlast <= 1'b0;
            hold_v <= 1'b0;
            hold_d <= '0;
        end else if (abort) begin
            m_tvalid <= 1'b0;
            m_tlast <= 1'b0;
            hold_v <= 1'b0;
        end else begin
            if (m_tvalid && m_tready) begin
                m_tvalid <= 1'b0;
                m_tlast <= 1'b0;
            end
            if (start) count <= '0;
            if (ready && (push || flush) && hold_v) begin
                m_tdata <= hold_d;
                m_tlast <= flush;
                m_tvalid <= 1'b1;
            end
            if (ready && push) begin
                hold_v <= 1'b1;
                hold_d <= data;
                count <= count + 1'b1;
            end else if (ready && flush) begin
                hold_v <= 1'b0;
            end
        end
    end
endmodule
