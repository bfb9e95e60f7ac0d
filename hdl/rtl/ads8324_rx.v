`timescale 1ns / 1ps
`include "rram_defines.vh"
// ADS8324 serial reader: one conversion per start (TI ADS8324 datasheet, timing diagram).
// A falling CS starts sampling; DOUT changes on the falling DCLK edge and is captured here on the
// rising edge.  Frame (rramctl.hw.adc.serial_bits; protocol.toml ADC_*): 5 sampling clocks (ours, datasheet
// 4.5-5), one null bit, 14 data bits MSB first (two's complement), 2 zero bits = 22 DCLKs; CS then goes
// high for at least CS_HIGH clocks.  DCLK period 2*HALF clocks (ours; HALF = 42 -> 1.19 MHz at
// 100 MHz, about 50 kSPS as in the datasheet; benches use a smaller HALF to run fast).
module ads8324_rx #(
    parameter integer HALF = `RRAM_ADC_HALF,  // defaults and their datasheet bounds: protocol.toml [clock.*]
    parameter integer CS_HIGH = `RRAM_ADC_CS_HIGH,
    parameter integer MIN_CYCLES = `RRAM_ADC_MIN_CYCLES  // least clocks between CS falls: the ADS8324's 50 kSPS
) (
    input  wire               clk,
    input  wire               rst_n,
    input  wire               start,
    output reg                busy,
    output reg  signed [`RRAM_ADC_BITS-1:0] code,
    output reg                cs_n,
    output reg                dclk,
    input  wire               dout
);
    `include "rram_protocol.vh"
    localparam integer SAMPLE_CLOCKS = 32'(ADC_SAMPLE_CLOCKS);
    localparam integer DATA_FIRST = SAMPLE_CLOCKS + 32'(ADC_NULL_BITS);  // rising edges before the data MSB
    localparam integer DATA_BITS = 32'(ADC_BITS);
    localparam integer FRAME_CLOCKS = 32'(ADC_FRAME_CLOCKS);  // 22 (the generator checks the sum)
    localparam integer NW = $clog2(FRAME_CLOCKS + 1);
    localparam integer MAXC = (HALF > CS_HIGH) ? HALF : CS_HIGH;
    localparam integer CW = $clog2(MAXC + 1) + 1;
    reg [NW-1:0] nclk;  // rising edges so far
    reg [1:0] ph;  // 0 DCLK low, 1 DCLK high, 2 CS high gap
    reg [DATA_BITS-1:0] sh;
    localparam integer GW = $clog2(MIN_CYCLES + 1) + 1;
    reg [GW-1:0] since;  // clocks since CS last fell (saturates): busy until a new conversion keeps the rate
    wire gap_ok = since >= GW'(MIN_CYCLES - 1);
    wire tick;
    wire step = busy && tick;  // the state machine moves on the prescaler's tick
    wire to_gap = ph == 2'd1 && nclk == NW'(FRAME_CLOCKS);  // this step raises CS
    rram_prescaler #(.MAX(MAXC)) u_tick (
        .clk(clk), .rst_n(rst_n), .load((!busy && start) || step),
        .cycles(to_gap ? CW'(CS_HIGH) : CW'(HALF)), .tick(tick)
    );

    always @(posedge clk or negedge rst_n) begin
        if (!rst_n) begin
            busy <= 1'b0;
            code <= '0;
            cs_n <= 1'b1;
            dclk <= 1'b0;
            nclk <= NW'(0);
            ph <= 2'd0;
            sh <= '0;
            since <= {GW{1'b1}};
        end else if (!busy) begin
            if (!gap_ok) since <= since + 1'b1;
            if (start) begin
                since <= GW'(1);
                busy <= 1'b1;
                cs_n <= 1'b0;
                nclk <= NW'(0);
                ph <= 2'd0;
            end
        end else begin
            if (!gap_ok) since <= since + 1'b1;
            if (step) case (ph)
                2'd0: begin  // rising edge: capture DOUT
                    dclk <= 1'b1;
                    if (nclk >= NW'(DATA_FIRST) && nclk < NW'(DATA_FIRST + DATA_BITS)) sh <= {sh[DATA_BITS-2:0], dout};
                    nclk <= nclk + 1'b1;
                    ph <= 2'd1;
                end
                2'd1: begin
                    dclk <= 1'b0;
                    if (nclk == NW'(FRAME_CLOCKS)) begin
                        cs_n <= 1'b1;
                        code <= sh;
                        ph <= 2'd2;
                    end else begin
                        ph <= 2'd0;
                    end
                end
                default: if (gap_ok) busy <= 1'b0;  // else stay in the CS-high gap until the rate allows
            endcase
        end
    end
endmodule
