`timescale 1ns / 1ps
`include "rram_defines.vh"
// SN74HC595 chain driver: shifts one 32-bit word MSB first on SER/SRCLK, or pulses RCLK.
// SN74HC595 datasheet: SER is sampled on the rising SRCLK edge, the rising RCLK edge copies the
// shift register to the output latch.  SER changes while SRCLK is low and is stable for HALF clocks
// before the rising edge (setup) and HALF clocks after it (hold).  Timing (ours): SRCLK period
// 2*HALF clocks (HALF = 3 -> 16.7 MHz at 100 MHz, below the datasheet f_max at 4.5 V), RCLK high
// for HALF clocks after HALF clocks of setup from the last SRCLK edge.
module hc595_chain #(
    parameter integer HALF = `RRAM_SR_HALF  // default and its datasheet bounds: protocol.toml [clock.SR_HALF]
) (
    input  wire        clk,
    input  wire        rst_n,
    input  wire        shift,   // start shifting `word`
    input  wire        latch,   // start an RCLK pulse
    input  wire [31:0] word,
    output reg         busy,
    output reg         ser,
    output reg         srclk,
    output reg         rclk
);
    localparam integer CW = $clog2(HALF + 1) + 1;
    reg [31:0] sh;
    reg [5:0] nbit;
    reg [1:0] ph;  // 0 SER setup (SRCLK low), 1 SRCLK high, 2 RCLK setup, 3 RCLK high
    wire tick;
    wire step = busy && tick;  // the state machine moves on the prescaler's tick
    rram_prescaler #(.MAX(HALF)) u_tick (
        .clk(clk), .rst_n(rst_n), .load((!busy && (shift || latch)) || step), .cycles(CW'(HALF)), .tick(tick)
    );

    always @(posedge clk or negedge rst_n) begin
        if (!rst_n) begin
            busy <= 1'b0;
            ser <= 1'b0;
            srclk <= 1'b0;
            rclk <= 1'b0;
            sh <= '0;
            nbit <= '0;
            ph <= 2'd0;
        end else if (!busy) begin
            if (shift) begin
                busy <= 1'b1;
                ser <= word[31];
                sh <= {word[30:0], 1'b0};
                nbit <= 6'd32;
                ph <= 2'd0;
            end else if (latch) begin
                busy <= 1'b1;
                ph <= 2'd2;
            end
        end else if (step) begin
            case (ph)
                2'd0: begin
                    srclk <= 1'b1;
                    nbit <= nbit - 1'b1;
                    ph <= 2'd1;
                end
                2'd1: begin
                    srclk <= 1'b0;
                    if (nbit == '0) begin
                        busy <= 1'b0;
                    end else begin
                        ser <= sh[31];
                        sh <= {sh[30:0], 1'b0};
                        ph <= 2'd0;
                    end
                end
                2'd2: begin
                    rclk <= 1'b1;
                    ph <= 2'd3;
                end
                default: begin
                    rclk <= 1'b0;
                    busy <= 1'b0;
                end
            endcase
        end
    end
endmodule
