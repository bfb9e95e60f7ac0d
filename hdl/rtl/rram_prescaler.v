`timescale 1ns / 1ps
// The one clock prescaler of the three serial peripherals (DAC80508 SPI, SN74HC595 chain, ADS8324
// reader): each of them steps its bit-level state machine on `tick` and, on that same clock, loads the
// length of the next interval.  `load` with `cycles` = n (1..MAX) makes `tick` rise n clocks later, on the
// last clock of the interval; without a new `load` the prescaler stops with `tick` high (idle = ready).
module rram_prescaler #(
    parameter integer MAX = 4  // longest interval in clocks
) (
    input  wire         clk,
    input  wire         rst_n,
    input  wire         load,
    input  wire [W-1:0] cycles,
    output wire         tick
);
    localparam integer W = $clog2(MAX + 1) + 1;
    reg [W-1:0] left;  // clocks of the interval still to wait after this one
    assign tick = (left == {W{1'b0}});
    always @(posedge clk or negedge rst_n) begin
        if (!rst_n) left <= {W{1'b0}};
        else if (load) left <= cycles - 1'b1;
        else if (!tick) left <= left - 1'b1;
    end
endmodule
