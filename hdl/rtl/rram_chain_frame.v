`timescale 1ns / 1ps
// BL chain frames of the sequencer onto the SN74HC595 chain driver (hc595_chain), two sources:
// - `gen`: the frame of a row pattern (rram_pattern: rows lo..hi get nibble `nib_in`, the others `nib_out`;
//   held until `done`) is shifted word by word and latched;
// - `put`: one host word (MULTIPLY) of a frame that `frame` started; a word for a 595 this array does not
//   have (`real_word` low: the first 64 - ROWS/8 words of a frame) is dropped, and after the frame's last
//   word (`last_word`) the frame is latched.
// Handshake: `gen` is taken while no frame is under way, `put` only while `ready` (none under way and the
// driver free); `done` is high on the clock the latch pulse has ended (the sequencer enables the 595
// outputs then).  `idle`: no frame under way and the driver quiet.  `abort` stops at once (a word or latch
// pulse under way finishes in the driver).
module rram_chain_frame #(
    parameter integer ROWS = 512
) (
    input  wire        clk,
    input  wire        rst_n,
    input  wire        abort,
    input  wire        gen,
    input  wire [15:0] lo,
    input  wire [15:0] hi,
    input  wire [3:0]  nib_in,
    input  wire [3:0]  nib_out,
    input  wire        frame,
    input  wire        put,
    input  wire [31:0] put_word,
    output wire        real_word,
    output wire        last_word,
    output wire        ready,
    output wire        done,
    output wire        idle,
    output reg         ch_shift,
    output reg         ch_latch,
    output reg  [31:0] ch_word,
    input  wire        ch_busy
);
    `include "rram_protocol.vh"
    localparam [6:0] SKIP_WORDS = 7'(FRAME_WORDS - 7'(ROWS / 8));  // words for 595s this array does not have
    localparam [1:0] C_IDLE = 2'd0, C_GEN = 2'd1, C_LATCH = 2'd2, C_LATCH_W = 2'd3;
    reg [1:0] ph;
    reg [6:0] w;  // word of the frame
    reg half;  // C_GEN: word w is shifting, w moves on next
    wire [31:0] gen_word;
    rram_pattern u_pattern (.w(w), .lo(lo), .hi(hi), .nib_in(nib_in), .nib_out(nib_out), .word(gen_word));
    wire drv_free = !ch_shift && !ch_busy;
    /* verilator lint_off UNSIGNED */  // constant true when ROWS = 512
    assign real_word = w >= SKIP_WORDS;
    /* verilator lint_on UNSIGNED */
    assign last_word = w == FRAME_WORDS - 1'b1;
    assign ready = (ph == C_IDLE) && drv_free;
    assign done = (ph == C_LATCH_W) && !ch_latch && !ch_busy;
    assign idle = (ph == C_IDLE) && drv_free && !ch_latch;
    always @(posedge clk or negedge rst_n) begin
        if (!rst_n) begin
            ph <= C_IDLE;
            w <= 7'd0;
            half <= 1'b0;
            ch_shift <= 1'b0;
            ch_latch <= 1'b0;
            ch_word <= 32'd0;
        end else begin
            ch_shift <= 1'b0;
            ch_latch <= 1'b0;
            if (abort) begin
                ph <= C_IDLE;
                w <= 7'd0;
            end else case (ph)
                C_IDLE: if (frame) begin
                    w <= 7'd0;
                end else if (gen) begin
                    w <= SKIP_WORDS;
                    half <= 1'b0;
                    ph <= C_GEN;
                end else if (put && ready) begin
                    if (real_word) begin
                        ch_word <= put_word;
                        ch_shift <= 1'b1;
                    end
                    w <= w + 1'b1;
                    if (last_word) begin
                        w <= 7'd0;
                        ph <= C_LATCH;
                    end
                end
                C_GEN: if (drv_free) begin
                    if (half) begin
                        half <= 1'b0;
                        w <= w + 1'b1;
                        if (last_word) begin
                            w <= 7'd0;
                            ph <= C_LATCH;
                        end
                    end else begin
                        ch_word <= gen_word;
                        ch_shift <= 1'b1;
                        half <= 1'b1;
                    end
                end
                C_LATCH: if (drv_free) begin
                    ch_latch <= 1'b1;
                    ph <= C_LATCH_W;
                end
                default: if (done) ph <= C_IDLE;
            endcase
        end
    end
endmodule
