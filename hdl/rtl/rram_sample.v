`timescale 1ns / 1ps
`include "rram_defines.vh"
// One sample of the sequencer: after `start`, `settle` clocks (the column mux and the TIA settle, lines
// already driven), then one ADC conversion (`adc_go` once the reader is free).  Handshake: `done` is high
// on the clock the conversion has ended; from the next clock `code` holds the sample.  `rail` (valid with
// `done`): the sample is at an ADC rail (SAT_COUNT).  `idle`: nothing started and the reader is free.
// `abort` stops it at once (a conversion under way finishes in the reader; `idle` waits for it).
module rram_sample (
    input  wire               clk,
    input  wire               rst_n,
    input  wire               start,
    input  wire               abort,
    input  wire [`RRAM_SETTLE_CYCLES_CYCLES_WIDTH-1:0] settle,
    output wire               done,
    output wire               rail,
    output wire               idle,
    output reg  signed [`RRAM_ADC_BITS-1:0] code,
    output reg                adc_go,
    input  wire               adc_busy,
    input  wire signed [`RRAM_ADC_BITS-1:0] adc_code
);
    `include "rram_protocol.vh"
    localparam signed [ADC_BITS-1:0] CODE_MAX = ADC_BITS'((1 << (ADC_BITS - 1)) - 1), CODE_MIN = ~CODE_MAX;
    localparam [1:0] P_IDLE = 2'd0, P_SETTLE = 2'd1, P_CONV = 2'd2;
    reg [1:0] ph;
    reg [`RRAM_SETTLE_CYCLES_CYCLES_WIDTH-1:0] cnt;  // settle clocks left (SETTLE_CYCLES)
    assign done = (ph == P_CONV) && !adc_go && !adc_busy;
    assign rail = (adc_code == CODE_MIN) || (adc_code == CODE_MAX);
    assign idle = (ph == P_IDLE) && !adc_go && !adc_busy;
    always @(posedge clk or negedge rst_n) begin
        if (!rst_n) begin
            ph <= P_IDLE;
            cnt <= '0;
            code <= '0;
            adc_go <= 1'b0;
        end else begin
            adc_go <= 1'b0;
            if (abort) begin
                ph <= P_IDLE;
            end else if (start) begin
                cnt <= settle;
                ph <= P_SETTLE;
            end else if (ph == P_SETTLE) begin
                if (cnt != '0) cnt <= cnt - 1'b1;
                else if (!adc_busy) begin
                    adc_go <= 1'b1;
                    ph <= P_CONV;
                end
            end else if (done) begin
                code <= adc_code;
                ph <= P_IDLE;
            end
        end
    end
endmodule
