`timescale 1ns / 1ps
`include "rram_defines.vh"
// Status and counters of the sequencer (docs/hdl.md, "Status").  `accept`: the idle sequencer takes a
// START whose parameter check gave `start_err` (E_NONE: BUSY rises; otherwise ERROR and ERR_CODE at once,
// no operation).  `finish`: the running operation ends with `result` (E_NONE: DONE and OP_COUNT + 1,
// otherwise ERROR); DONE, ERROR and ERR_CODE change only at these two points, at CLEAR, and at a DAC frame
// refused by the ratings while idle (`rating_err`: OVER_RATING).  A START while BUSY only sets
// `start_refused`.  `pulse`: a programming pulse ended (PULSE_COUNT + `pulses`); `sat`: a sample at a rail
// (SAT_COUNT + 1, cleared by an accepted START).
module rram_status (
    input  wire        clk,
    input  wire        rst_n,
    input  wire        start,
    input  wire        clear,
    input  wire        rating_err,
    input  wire        accept,
    input  wire [`RRAM_STATUS_ERR_CODE_WIDTH-1:0] start_err,
    input  wire        finish,
    input  wire [`RRAM_STATUS_ERR_CODE_WIDTH-1:0] result,
    input  wire        pulse,
    input  wire [`RRAM_PULSE_COUNT_COUNT_WIDTH-1:0] pulses,  // added to PULSE_COUNT
    input  wire        sat,
    output reg         busy,
    output reg         done,
    output reg         error,
    output reg  [`RRAM_STATUS_ERR_CODE_WIDTH-1:0] err_code,
    output reg         start_refused,
    output reg  [`RRAM_OP_COUNT_COUNT_WIDTH-1:0] op_count,
    output reg  [`RRAM_PULSE_COUNT_COUNT_WIDTH-1:0] pulse_count,
    output reg  [`RRAM_SAT_COUNT_COUNT_WIDTH-1:0] sat_count
);
    `include "rram_protocol.vh"
    always @(posedge clk or negedge rst_n) begin
        if (!rst_n) begin
            busy <= 1'b0;
            done <= 1'b0;
            error <= 1'b0;
            err_code <= E_NONE;
            start_refused <= 1'b0;
            op_count <= '0;
            pulse_count <= '0;
            sat_count <= '0;
        end else begin
            if (clear) begin
                done <= 1'b0;
                error <= 1'b0;
                err_code <= E_NONE;
                start_refused <= 1'b0;
            end
            if (rating_err && !busy) begin  // a running operation keeps its own status
                done <= 1'b0;
                error <= 1'b1;
                err_code <= E_OVER_RATING;
            end
            if (start && busy) start_refused <= 1'b1;  // the running operation goes on, its status untouched
            if (pulse) pulse_count <= pulse_count + pulses;
            if (sat) sat_count <= sat_count + 1'b1;
            if (accept) begin
                start_refused <= 1'b0;
                done <= 1'b0;
                error <= start_err != E_NONE;
                err_code <= start_err;
                if (start_err == E_NONE) begin
                    busy <= 1'b1;
                    sat_count <= '0;
                end
            end
            if (finish) begin  // status and the interrupt change only here, at the end
                busy <= 1'b0;
                err_code <= result;
                if (result == E_NONE) begin
                    done <= 1'b1;
                    op_count <= op_count + 1'b1;
                end else error <= 1'b1;
            end
        end
    end
endmodule
