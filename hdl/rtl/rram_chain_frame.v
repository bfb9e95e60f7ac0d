`timescale 1ns / 1ps
`include "rram_defines.vh"
// BL chain frames of the sequencer onto the SN74HC595 chain driver (hc595_chain), two sources:
// - `gen`: the frame of a row pattern (rram_pattern: rows lo..hi get nibble `nib_in`, the others `nib_out`;
//   held until `done`);
// - `put`: one host word (MULTIPLY) of a frame that `frame` started; a word for a 595 this array does not
//   have (`real_word` low: the first 64 - ROWS/8 words of a frame) is dropped.
// Every frame is applied in two latch steps (break-before-make at the CD4051B, docs/hdl.md "Timing budget"):
// step 1 shifts the frame with INH set in every nibble (the new mux addresses, every switch off) and latches
// it; `addr` (one clock) tells the sequencer to enable the 595 outputs, so the address lines are driven while
// every INH is high.  Step 2 shifts the frame itself (a host frame from the word buffer, which keeps the words
// step 1 took) and latches it only when `guard` clocks have passed since `addr`: INH falls on a mux only after
// its address lines have been stable for the guard (CD4051B address-to-signal delay + 595 output delay).
// Handshake: `gen` is taken while no frame is under way, `put` only while `ready` (none under way and the
// driver free); `done` is high on the clock the step-2 latch pulse has ended.  `idle`: no frame under way and
// the driver quiet.  `abort` stops at once (a word or latch pulse under way finishes in the driver).
module rram_chain_frame #(
    parameter integer ROWS = `RRAM_ARRAY_LINES
) (
    input  wire        clk,
    input  wire        rst_n,
    input  wire        abort,
    input  wire [`RRAM_GUARD_CYCLES_CYCLES_WIDTH-1:0] guard,  // clocks from `addr` to the step-2 latch (GUARD_CYCLES)
    input  wire        gen,
    input  wire [`RRAM_ROW_INDEX_WIDTH-1:0] lo,
    input  wire [`RRAM_ROW_INDEX_WIDTH-1:0] hi,
    input  wire [`RRAM_CHAIN_NIBBLE_BITS-1:0] nib_in,
    input  wire [`RRAM_CHAIN_NIBBLE_BITS-1:0] nib_out,
    input  wire        frame,
    input  wire        put,
    input  wire [31:0] put_word,
    output wire        real_word,
    output wire        last_word,
    output wire        ready,
    output wire        addr,
    output wire        done,
    output wire        idle,
    output reg         ch_shift,
    output reg         ch_latch,
    output reg  [31:0] ch_word,
    input  wire        ch_busy
);
    `include "rram_protocol.vh"
    localparam integer NB = `RRAM_CHAIN_NIBBLE_BITS;  // bits of a BL's nibble (protocol.toml [word.CHAIN_NIBBLE])
    localparam integer LPW = 32 / NB;  // lines (nibbles) per chain word
    localparam integer FWW = `RRAM_FRAME_WORD_INDEX_WIDTH;  // a word index of a frame
    localparam [FWW-1:0] SKIP_WORDS = FWW'(FRAME_WORDS - FWW'(ROWS / LPW));  // words for 595s this array does not have
    localparam integer HW = (ROWS / LPW > 1) ? $clog2(ROWS / LPW) : 1;  // host word buffer index
    localparam [31:0] INH_ALL = {LPW{NB'(1) << `RRAM_CHAIN_NIBBLE_INH_LSB}};  // INH set in every nibble of a word
    localparam [1:0] C_IDLE = 2'd0, C_GEN = 2'd1, C_LATCH = 2'd2, C_LATCH_W = 2'd3;
    reg [1:0] ph;
    reg [FWW-1:0] w;  // word of the frame
    reg half;  // C_GEN: word w is shifting, w moves on next
    reg step2;  // the frame itself (INH as given) after the address step
    reg host;  // the frame came from `put` (step 2 replays the word buffer)
    reg [`RRAM_GUARD_CYCLES_CYCLES_WIDTH-1:0] guard_left;  // clocks before the step-2 latch may start
    reg [31:0] host_words[0:ROWS/LPW-1];
    wire [31:0] gen_word;
    rram_pattern u_pattern (.w(w), .lo(lo), .hi(hi), .nib_in(nib_in), .nib_out(nib_out), .word(gen_word));
    wire [HW-1:0] hw_idx = HW'(w - SKIP_WORDS);
    wire [31:0] step2_word = host ? host_words[hw_idx] : gen_word;
    wire drv_free = !ch_shift && !ch_busy;
    wire latched = (ph == C_LATCH_W) && !ch_latch && !ch_busy;  // the latch pulse has ended
    /* verilator lint_off UNSIGNED */  // constant true when ROWS = 512
    assign real_word = w >= SKIP_WORDS;
    /* verilator lint_on UNSIGNED */
    assign last_word = w == FRAME_WORDS - 1'b1;
    assign ready = (ph == C_IDLE) && drv_free;
    assign addr = latched && !step2;
    assign done = latched && step2;
    assign idle = (ph == C_IDLE) && drv_free && !ch_latch;
    always @(posedge clk) if (ph == C_IDLE && put && ready && real_word) host_words[hw_idx] <= put_word;
    always @(posedge clk or negedge rst_n) begin
        if (!rst_n) begin
            ph <= C_IDLE;
            w <= '0;
            half <= 1'b0;
            step2 <= 1'b0;
            host <= 1'b0;
            guard_left <= '0;
            ch_shift <= 1'b0;
            ch_latch <= 1'b0;
            ch_word <= '0;
        end else begin
            ch_shift <= 1'b0;
            ch_latch <= 1'b0;
            if (guard_left != '0) guard_left <= guard_left - 1'b1;
            if (abort) begin
                ph <= C_IDLE;
                w <= '0;
                step2 <= 1'b0;
                guard_left <= '0;
            end else case (ph)
                C_IDLE: if (frame) begin
                    w <= '0;
                end else if (gen) begin
                    w <= SKIP_WORDS;
                    half <= 1'b0;
                    step2 <= 1'b0;
                    host <= 1'b0;
                    ph <= C_GEN;
                end else if (put && ready) begin  // step 1 of a host frame: the word with INH set
                    if (real_word) begin
                        ch_word <= put_word | INH_ALL;
                        ch_shift <= 1'b1;
                    end
                    w <= w + 1'b1;
                    if (last_word) begin
                        w <= '0;
                        step2 <= 1'b0;
                        host <= 1'b1;
                        ph <= C_LATCH;
                    end
                end
                C_GEN: if (drv_free) begin
                    if (half) begin
                        half <= 1'b0;
                        w <= w + 1'b1;
                        if (last_word) begin
                            w <= '0;
                            ph <= C_LATCH;
                        end
                    end else begin
                        ch_word <= step2 ? step2_word : (gen_word | INH_ALL);
                        ch_shift <= 1'b1;
                        half <= 1'b1;
                    end
                end
                C_LATCH: if (drv_free && guard_left == '0) begin  // step 2: the guard since `addr` has passed
                    ch_latch <= 1'b1;
                    ph <= C_LATCH_W;
                end
                default: if (latched) begin
                    if (step2) begin
                        step2 <= 1'b0;
                        ph <= C_IDLE;
                    end else begin  // `addr`: the outputs go on now; shift the frame itself meanwhile
                        step2 <= 1'b1;
                        guard_left <= guard;
                        w <= SKIP_WORDS;
                        half <= 1'b0;
                        ph <= C_GEN;
                    end
                end
            endcase
        end
    end
endmodule
