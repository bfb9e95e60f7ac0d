`timescale 1ns / 1ps
`include "rram_defines.vh"
// Pulse timer of the sequencer: after `start`, `guard` clocks, then a pulse of exactly `width` clocks,
// then `guard` clocks.  It only times: on the clock `on` is high the sequencer raises drive_en, on the
// clock `off` is high it lowers it (and counts the pulse), on the clock `done` is high it floats the lines.
// drive_en therefore stays one flip-flop in the sequencer (a registered pin).  `abort` stops it at once.
module rram_pulse (
    input  wire        clk,
    input  wire        rst_n,
    input  wire        start,
    input  wire        abort,
    input  wire [`RRAM_GUARD_CYCLES_CYCLES_WIDTH-1:0] guard,
    input  wire [`RRAM_PULSE_CYCLES_CYCLES_WIDTH-1:0] width,  // 1 .. MAX_PULSE_CYCLES (the sequencer refuses 0 with BAD_PULSE)
    output wire        on,
    output wire        off,
    output wire        done
);
    localparam [1:0] P_IDLE = 2'd0, P_PRE = 2'd1, P_ON = 2'd2, P_POST = 2'd3;
    reg [1:0] ph;
    // the counter holds a guard (GUARD_CYCLES) or a pulse width (PULSE_CYCLES): the wider of the two fields
    localparam integer GW = `RRAM_GUARD_CYCLES_CYCLES_WIDTH, PW = `RRAM_PULSE_CYCLES_CYCLES_WIDTH;
    localparam integer CNTW = (GW > PW) ? GW : PW;
    reg [CNTW-1:0] cnt;
    assign on = (ph == P_PRE) && (cnt == '0);
    assign off = (ph == P_ON) && (cnt == CNTW'(1));
    assign done = (ph == P_POST) && (cnt == '0);
    always @(posedge clk or negedge rst_n) begin
        if (!rst_n) begin
            ph <= P_IDLE;
            cnt <= '0;
        end else if (abort) begin
            ph <= P_IDLE;
            cnt <= '0;
        end else if (start) begin
            ph <= P_PRE;
            cnt <= CNTW'(guard);
        end else if (on) begin
            ph <= P_ON;
            cnt <= width;
        end else if (off) begin
            ph <= P_POST;
            cnt <= CNTW'(guard);
        end else if (done) begin
            ph <= P_IDLE;
        end else if (ph != P_IDLE) begin
            cnt <= cnt - 1'b1;
        end
    end
endmodule
