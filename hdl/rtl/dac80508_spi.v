`timescale 1ns / 1ps
`include "rram_defines.vh"
// DAC80508 SPI master: one 24-bit frame (`RRAM_DAC_FRAME_FRAME_WIDTH) per start, SPI mode 1 (CPOL 0, CPHA 1), MSB first.
// TI DAC80508 datasheet, "Serial interface" / timing requirements: SCLK idles low, the host
// changes SDIN on the rising SCLK edge and the DAC latches it on the falling edge; SYNC low
// frames exactly 24 SCLK cycles; SDO is driven by the DAC on the rising edge and captured here on
// the falling edge (a read's data comes back on the following frame).  Timing (ours, inside the
// datasheet limits, check them there): SCLK period 2*HALF clocks (HALF = 2 -> 25 MHz at 100 MHz,
// datasheet max 50 MHz), SYNC-to-first-edge and last-edge-to-SYNC = HALF clocks, SYNC high for at
// least SYNC_HIGH clocks between frames.  Register reads are slower than writes (DAC80508 read timing,
// FSDO = 0: SCLK <= 12 MHz, high/low >= 35 ns, SDO valid t_SDODLY <= 33.5 ns after the rising edge, at
// IOVDD 1.7-2.7 V): a read command and the frame after it, which carries the data, run at READ_HALF
// (10 -> 5 MHz, ours), so SDO is sampled READ_HALF clocks (100 ns) after it is launched (docs/hdl.md,
// "Timing budget per mode", has the margins).
module dac80508_spi #(
    parameter integer HALF = `RRAM_DAC_HALF,  // defaults and their datasheet bounds: protocol.toml [clock.*]
    parameter integer READ_HALF = `RRAM_DAC_READ_HALF,  // SCLK half period of a read command and of the frame after it
    parameter integer SYNC_HIGH = `RRAM_DAC_SYNC_HIGH
) (
    input  wire        clk,
    input  wire        rst_n,
    input  wire        start,
    input  wire [`RRAM_DAC_FRAME_FRAME_WIDTH-1:0] frame,
    output reg         busy,
    output reg  [`RRAM_DAC_FRAME_FRAME_WIDTH-1:0] rdata,
    output reg         sclk,
    output reg         sync_n,
    output reg         sdin,
    input  wire        sdo
);
    localparam integer FW = `RRAM_DAC_FRAME_FRAME_WIDTH;  // SPI frame bits (24; DAC_FRAME word, READ msb + 1)
    localparam integer NW = $clog2(FW + 1);  // bit counter
    localparam integer MAXW = (HALF > READ_HALF) ? HALF : READ_HALF;
    wire frame_read = frame[`RRAM_DAC_FRAME_READ];  // this frame is a register read command
    localparam integer MAXC = (MAXW > SYNC_HIGH) ? MAXW : SYNC_HIGH;
    localparam integer CW = $clog2(MAXC + 1) + 1;
    reg [FW-1:0] sh;
    reg [NW-1:0] nbit;  // bits still to send in this frame
    reg [1:0] ph;  // 0 SYNC setup, 1 SCLK high, 2 SCLK low, 3 SYNC high (gap)
    reg last_read;  // the previous frame was a read command: this frame carries the register on SDO
    reg slow;  // this frame runs at READ_HALF: SDO is sampled READ_HALF clocks after the DAC launches it
    wire tick;
    wire step = busy && tick;  // the state machine moves on the prescaler's tick
    wire to_gap = busy && (ph == 2'd0 || ph == 2'd2) && nbit == NW'(0);  // this step raises SYNC (never idle:
    // out of reset ph = 0 and nbit = 0, and the first start must load the SCLK half period, not SYNC_HIGH)
    function automatic [CW-1:0] half_of(input s);
        half_of = s ? CW'(READ_HALF) : CW'(HALF);
    endfunction
    rram_prescaler #(.MAX(MAXC)) u_tick (
        .clk(clk), .rst_n(rst_n), .load((!busy && start) || step),
        .cycles(to_gap ? CW'(SYNC_HIGH) : (!busy && start) ? half_of(frame_read || last_read)
                                                              : half_of(slow)), .tick(tick)
    );

    always @(posedge clk or negedge rst_n) begin
        if (!rst_n) begin
            busy <= 1'b0;
            rdata <= {FW{1'b0}};
            sclk <= 1'b0;
            sync_n <= 1'b1;
            sdin <= 1'b0;
            sh <= {FW{1'b0}};
            nbit <= NW'(0);
            ph <= 2'd0;
            last_read <= 1'b0;
            slow <= 1'b0;
        end else if (!busy) begin
            if (start) begin
                busy <= 1'b1;
                sh <= frame;
                nbit <= NW'(FW);
                sync_n <= 1'b0;
                ph <= 2'd0;
                slow <= frame_read || last_read;
                last_read <= frame_read;
            end
        end else if (step) begin
            case (ph)
                2'd0, 2'd2: begin
                    if (nbit != NW'(0)) begin  // rising edge: next data bit out
                        sclk <= 1'b1;
                        sdin <= sh[FW-1];
                        sh <= {sh[FW-2:0], 1'b0};
                        nbit <= nbit - 1'b1;
                        ph <= 2'd1;
                    end else begin  // frame complete: SYNC high, keep it high SYNC_HIGH clocks
                        sync_n <= 1'b1;
                        sdin <= 1'b0;
                        ph <= 2'd3;
                    end
                end
                2'd1: begin  // falling edge: the DAC latches SDIN, we capture SDO
                    sclk <= 1'b0;
                    rdata <= {rdata[FW-2:0], sdo};
                    ph <= 2'd2;
                end
                default: busy <= 1'b0;
            endcase
        end
    end
endmodule
