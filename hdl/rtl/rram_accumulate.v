`timescale 1ns / 1ps
`include "rram_defines.vh"
// Sample accumulator of MULTIPLY: one signed sum per column, sum[col] = sum over bit-planes k of
// code_k << k (docs/protocol.md).  `sum` is the column's sum including this sample (plane 0 starts it
// afresh); `we` stores it.  A plain synchronous-write memory (distributed or block RAM), no reset.
module rram_accumulate #(
    parameter integer COLS = `RRAM_ARRAY_LINES,
    parameter integer ACCW = 24  // 14-bit code << 7, summed over 8 bit-planes, fits 22 bits
) (
    input  wire                   clk,
    input  wire                   we,
    input  wire [CW-1:0]          col,
    input  wire [`RRAM_PLANE_WIDTH-1:0] plane,  // bit-plane 0 .. MAX_BITS - 1
    input  wire signed [`RRAM_ADC_BITS-1:0] code,
    output wire signed [ACCW-1:0] sum
);
    localparam integer CW = $clog2(COLS);
    reg [ACCW-1:0] acc [0:COLS-1];
    wire signed [ACCW-1:0] term = ACCW'(code) <<< plane;
    assign sum = (plane == '0) ? term : $signed(acc[col]) + term;
    always @(posedge clk) begin
        if (we) acc[col] <= sum;
    end
endmodule
