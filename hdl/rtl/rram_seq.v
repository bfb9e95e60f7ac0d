`timescale 1ns / 1ps
// Command sequencer of the rramctl overlay: FORM, RESET, SET, PROGRAM (write-verify), READ,
// MULTIPLY, NOP, IDLE exactly as docs/protocol.md describes them, over the line-drive pins of
// docs/hdl.md.  Parameter errors are found at START (no BUSY, no op serial); stream errors
// (BAD_CELL, UNDERRUN) are found word by word in stream order.  Every operation, failed or not,
// ends with every line in the safe idle state: 595 outputs off (OE high -> the board's pull-ups
// inhibit every CD4051B, ours), drive enable, WLs and SL drivers off.
module rram_seq #(
    parameter integer ROWS = 512,
    parameter integer COLS = 512
) (
    input  wire        clk,
    input  wire        rst_n,
    // control and parameter registers
    input  wire        start,
    input  wire        abort_req,
    input  wire        clear,
    input  wire        rating_err,  // a DAC frame was refused by the ratings (OVER_RATING when idle)
    input  wire [3:0]  opcode,
    input  wire [15:0] row_start,
    input  wire [15:0] row_count,
    input  wire [15:0] col_start,
    input  wire [15:0] col_count,
    input  wire [31:0] pulse_cycles,
    input  wire [3:0]  bits,
    input  wire [15:0] batch,
    input  wire [19:0] cell_count,
    input  wire [19:0] verify_tol,
    input  wire [15:0] max_pulses,
    input  wire [15:0] settle_cycles,
    input  wire [15:0] guard_cycles,  // lines set -> drive_en, drive_en off -> lines floating (GUARD_CYCLES)
    // status
    output reg         busy,
    output reg         done,
    output reg         error,
    output reg  [7:0]  err_code,
    output reg         start_refused,  // a START came while BUSY and was ignored (sticky until CLEAR/START)
    output reg  [31:0] op_count,
    output reg  [31:0] pulse_count,
    output reg  [31:0] out_words,
    output reg  [31:0] sat_count,
    // SN74HC595 chain driver
    output reg         ch_shift,
    output reg         ch_latch,
    output reg  [31:0] ch_word,
    input  wire        ch_busy,
    output reg         sr_oe_n,
    // SL/WL drivers (docs/hdl.md)
    output reg  [CW-1:0] col_lo,
    output reg  [CW-1:0] col_hi,
    output reg  [1:0]  sl_mode,
    output reg         wl_en,
    output reg         drive_en,
    // ADC
    output reg         adc_go,
    output reg  [CW-1:0] adc_col,
    input  wire        adc_busy,
    input  wire signed [13:0] adc_code,
    // AXI-Stream in (MM2S) and out (S2MM)
    input  wire [31:0] s_tdata,
    input  wire        s_tvalid,
    input  wire        s_tlast,
    output wire        s_tready,
    output reg  [31:0] m_tdata,
    output reg         m_tvalid,
    output reg         m_tlast,
    input  wire        m_tready
);
    `include "rram_protocol.vh"
    localparam integer CW = $clog2(COLS);
    localparam integer ACCW = 24;  // 14-bit code << 7, summed over 8 bit-planes, fits 22 bits
    localparam [6:0] SKIP_WORDS = 7'(FRAME_WORDS - 7'(ROWS / 8));  // words for 595s this array does not have
    // CD4051B nibbles {INH, C, B, A} (docs/protocol.md)
    localparam [3:0] NIB_FLOAT = 4'(1 << MUX_INHIBIT_BIT), NIB_GND = {1'b0, SRC_GND}, NIB_VREAD = {1'b0, SRC_READ},
                     NIB_VBL = {1'b0, SRC_BL_PROG};
    // ADC rails: a code here is a saturated sample (SAT_COUNT)
    localparam signed [13:0] CODE_MAX = 14'((1 << (ADC_BITS - 1)) - 1), CODE_MIN = ~CODE_MAX;

    localparam [5:0]
        S_IDLE = 6'd0, S_FIN = 6'd1, S_FIN2 = 6'd2, S_DRAIN = 6'd3, S_IN = 6'd4, S_PUSH = 6'd5,
        S_GEN = 6'd6, S_GEN_W = 6'd7, S_LATCH = 6'd8, S_LATCH_W = 6'd9,
        S_PULSE = 6'd10, S_PULSE_ON = 6'd11, S_PULSE_OFF = 6'd12,
        S_SMP = 6'd13, S_SMP_GO = 6'd14, S_SMP_W = 6'd15,
        S_FORM = 6'd16, S_FORM_P = 6'd17, S_END = 6'd18,
        S_CELL = 6'd19, S_CELL_CHK = 6'd20, S_CELL_T = 6'd21, S_RS_P = 6'd23,
        S_CELL_NEXT = 6'd24, S_PV_READ = 6'd25, S_PV_DRV = 6'd26, S_PV_CHK = 6'd27, S_PV_P = 6'd28,
        S_PV_OUT = 6'd29, S_RD_ROW = 6'd30, S_RD_DRV = 6'd31, S_RD_CODE = 6'd32, S_MU_FRAME = 6'd33,
        S_MU_WORD = 6'd34, S_MU_SHIFT = 6'd35, S_MU_DRV = 6'd36, S_MU_CODE = 6'd37, S_MU_NEXT = 6'd38,
        S_RD_SMP = 6'd39, S_MU_SMP = 6'd40, S_RS_GO = 6'd41, S_ABORT = 6'd42, S_PV_MUL = 6'd43, S_DRV_GUARD = 6'd44;

    reg [5:0] state, ret, gret;  // gret: where S_DRV_GUARD goes once drive_en is on
    reg [7:0] pend_err;  // the error of the running operation: reported in STATUS when it ends
    reg [3:0] op;
    reg [31:0] cnt;  // pulse / settle / guard counter
    reg [19:0] cell_pos;  // position in the cell list
    reg [15:0] k;  // PROGRAM: pulses applied to this cell; MULTIPLY: bit-plane
    reg [15:0] b;  // MULTIPLY: vector; READ: row offset
    reg [15:0] j;  // READ / MULTIPLY: column offset
    reg [6:0] w;  // chain word
    reg [26:0] in_left;  // stream words the operation still needs
    reg in_word_last, in_premature, in_taken;
    reg [31:0] in_word;
    reg [15:0] cur_row;
    reg [CW-1:0] cur_col;
    reg signed [31:0] target;
    reg signed [13:0] code;
    reg [15:0] pat_lo, pat_hi;  // rows pat_lo..pat_hi get pat_in, the others pat_out
    reg [3:0] pat_in, pat_out;
    reg [31:0] pulse_inc;  // pulses one PULSE call adds to PULSE_COUNT
    reg hold_v;  // output word held back until the next one (or the end) decides TLAST
    reg [31:0] hold_d;
    reg [31:0] push_d;

    assign s_tready = (state == S_IN || state == S_DRAIN);
    wire out_free = !m_tvalid || m_tready;

    // ---- parameter checks at START (docs/protocol.md, "Error codes"; order as in the emulator) ----
    wire [16:0] row_end = {1'b0, row_start} + {1'b0, row_count};
    wire [16:0] col_end = {1'b0, col_start} + {1'b0, col_count};
    wire row_bad = (row_count == 16'd0) || (row_end > 17'(ROWS));
    wire col_bad = (col_count == 16'd0) || (col_end > 17'(COLS));
    wire pulse_op = (opcode == OP_FORM) || (opcode == OP_RESET) || (opcode == OP_SET) || (opcode == OP_PROGRAM);
    reg [7:0] start_err;
    always @* begin
        start_err = E_NONE;
        if (opcode > OP_IDLE) start_err = E_BAD_OPCODE;
        else if ((opcode == OP_FORM || opcode == OP_READ) && (row_bad || col_bad)) start_err = E_BAD_REGION;
        else if (opcode == OP_MULTIPLY && col_bad) start_err = E_BAD_REGION;
        else if (opcode == OP_MULTIPLY && (bits == 4'd0 || bits > MAX_BITS || batch == 16'd0)) start_err = E_BAD_BITS;
        else if (pulse_op && (pulse_cycles == 32'd0 || pulse_cycles > MAX_PULSE_CYCLES)) start_err = E_BAD_PULSE;
    end

    // ---- programming pulse timing (rram_pulse) ----
    wire aborting = busy && abort_req && state != S_ABORT;
    wire pulse_on, pulse_off, pulse_done;
    rram_pulse u_pulse (
        .clk(clk), .rst_n(rst_n), .start(state == S_PULSE && !aborting), .abort(aborting), .guard(guard_cycles),
        .width(pulse_cycles), .on(pulse_on), .off(pulse_off), .done(pulse_done)
    );

    // ---- generated chain word w of the row pattern (rram_pattern: docs/protocol.md layout) ----
    wire [31:0] gen_word;
    rram_pattern u_pattern (.w(w), .lo(pat_lo), .hi(pat_hi), .nib_in(pat_in), .nib_out(pat_out), .word(gen_word));

    // ---- write-verify acceptance: |code - target| * 1e6 <= target * VERIFY_TOL (docs/protocol.md) ----
    wire signed [33:0] diff = 34'(code) - 34'(target);
    wire [33:0] adiff = diff[33] ? 34'(-diff) : diff;
    wire signed [63:0] lhs = $signed({30'd0, adiff}) * 64'sd1000000;
    wire signed [63:0] rhs = 64'(target) * $signed({44'd0, verify_tol});
    reg signed [63:0] lhs_r, rhs_r;  // registered products (S_PV_MUL): the compare runs a clock later
    wire verified = lhs_r <= rhs_r;

    // MULTIPLY: per-column shift-and-add of the samples (rram_accumulate)
    wire signed [ACCW-1:0] acc_sum;
    rram_accumulate #(.COLS(COLS), .ACCW(ACCW)) u_acc (
        .clk(clk), .we(state == S_MU_CODE), .col(j[CW-1:0]), .plane(k[2:0]), .code(code), .sum(acc_sum)
    );

    // MULTIPLY chain words from the host: no nibble may connect a BL to V_BL (a programming level) during a
    // read; a nibble is {INH, C, B, A} (docs/protocol.md)
    reg word_bad;
    integer pi;
    always @* begin
        word_bad = 1'b0;
        for (pi = 0; pi < 8; pi = pi + 1)
            if (in_word[4 * pi + 32'(MUX_INHIBIT_BIT)] == 1'b0 && in_word[4 * pi +: 3] == SRC_BL_PROG) word_bad = 1'b1;
    end

    wire [15:0] cell_row = in_word[31:16];
    wire [15:0] cell_col = in_word[15:0];
    wire cell_bad = (cell_row >= 16'(ROWS)) || (cell_col >= 16'(COLS));

    task automatic lines_idle;
        begin
            sr_oe_n <= 1'b1;
            drive_en <= 1'b0;
            wl_en <= 1'b0;
            sl_mode <= SL_FLOAT;
        end
    endtask

    always @(posedge clk or negedge rst_n) begin
        if (!rst_n) begin
            state <= S_IDLE;
            ret <= S_IDLE;
            gret <= S_IDLE;
            op <= OP_NOP;
            busy <= 1'b0;
            done <= 1'b0;
            error <= 1'b0;
            err_code <= E_NONE;
            start_refused <= 1'b0;
            pend_err <= E_NONE;
            lhs_r <= 64'sd0;
            rhs_r <= 64'sd0;
            op_count <= 32'd0;
            pulse_count <= 32'd0;
            out_words <= 32'd0;
            sat_count <= 32'd0;
            ch_shift <= 1'b0;
            ch_latch <= 1'b0;
            ch_word <= 32'd0;
            sr_oe_n <= 1'b1;
            col_lo <= {CW{1'b0}};
            col_hi <= {CW{1'b0}};
            sl_mode <= SL_FLOAT;
            wl_en <= 1'b0;
            drive_en <= 1'b0;
            adc_go <= 1'b0;
            adc_col <= {CW{1'b0}};
            m_tdata <= 32'd0;
            m_tvalid <= 1'b0;
            m_tlast <= 1'b0;
            cnt <= 32'd0;
            cell_pos <= 20'd0;
            k <= 16'd0;
            b <= 16'd0;
            j <= 16'd0;
            w <= 7'd0;
            in_left <= 27'd0;
            in_word_last <= 1'b0;
            in_premature <= 1'b0;
            in_taken <= 1'b0;
            in_word <= 32'd0;
            cur_row <= 16'd0;
            cur_col <= {CW{1'b0}};
            target <= 32'sd0;
            code <= 14'sd0;
            pat_lo <= 16'd0;
            pat_hi <= 16'd0;
            pat_in <= NIB_FLOAT;
            pat_out <= NIB_FLOAT;
            pulse_inc <= 32'd0;
            hold_v <= 1'b0;
            hold_d <= 32'd0;
            push_d <= 32'd0;
        end else begin
            ch_shift <= 1'b0;
            ch_latch <= 1'b0;
            adc_go <= 1'b0;
            if (m_tvalid && m_tready) m_tvalid <= 1'b0;
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

            if (aborting) begin  // from any state, a stalled output included
                pend_err <= E_ABORTED;
                lines_idle();
                m_tvalid <= 1'b0;  // the word on a stalled output is dropped (the host resets its DMA)
                m_tlast <= 1'b0;
                hold_v <= 1'b0;
                state <= S_ABORT;
            end else begin
                case (state)
                    S_IDLE: if (start) begin
                        start_refused <= 1'b0;
                        pend_err <= E_NONE;
                        done <= 1'b0;
                        error <= 1'b0;
                        err_code <= start_err;
                        if (start_err != E_NONE) begin
                            error <= 1'b1;
                        end else begin
                            busy <= 1'b1;
                            sat_count <= 32'd0;
                            op <= opcode;
                            out_words <= 32'd0;
                            cell_pos <= 20'd0;
                            k <= 16'd0;
                            b <= 16'd0;
                            j <= 16'd0;
                            in_word_last <= 1'b0;
                            in_taken <= 1'b0;
                            case (opcode)
                                OP_FORM: state <= S_FORM;
                                OP_RESET, OP_SET: begin
                                    in_left <= 27'(cell_count);
                                    state <= (cell_count == 20'd0) ? S_END : S_CELL;
                                end
                                OP_PROGRAM: begin
                                    in_left <= {6'd0, cell_count, 1'b0};
                                    state <= (cell_count == 20'd0) ? S_END : S_CELL;
                                end
                                OP_READ: state <= S_RD_ROW;
                                OP_MULTIPLY: begin
                                    in_left <= 27'(batch) * 27'(bits) * 27'(FRAME_WORDS);
                                    state <= S_MU_FRAME;
                                end
                                default: state <= S_END;  // NOP, IDLE: lines to safe idle
                            endcase
                        end
                    end

                    // ---- subroutines (return to `ret`) ----
                    S_IN: if (s_tvalid) begin  // one stream word (s_tready is high in this state)
                        in_word <= s_tdata;
                        in_word_last <= s_tlast;
                        in_taken <= 1'b1;
                        in_premature <= s_tlast && in_left != 27'd1;
                        in_left <= in_left - 1'b1;
                        state <= ret;
                    end
                    S_PUSH: if (out_free) begin  // one output word; the held one goes out without TLAST
                        if (hold_v) begin
                            m_tdata <= hold_d;
                            m_tlast <= 1'b0;
                            m_tvalid <= 1'b1;
                        end
                        hold_v <= 1'b1;
                        hold_d <= push_d;
                        out_words <= out_words + 1'b1;
                        state <= ret;
                    end
                    S_GEN: begin  // chain frame from the row pattern
                        w <= SKIP_WORDS;
                        state <= S_GEN_W;
                        cnt <= 32'd0;
                    end
                    S_GEN_W: if (!ch_shift && !ch_busy) begin
                        if (cnt[0]) begin
                            cnt <= 32'd0;
                            w <= w + 1'b1;
                            if (w == FRAME_WORDS - 1'b1) state <= S_LATCH;
                        end else begin
                            ch_word <= gen_word;
                            ch_shift <= 1'b1;
                            cnt <= 32'd1;
                        end
                    end
                    S_LATCH: if (!ch_shift && !ch_busy) begin
                        ch_latch <= 1'b1;
                        state <= S_LATCH_W;
                    end
                    S_LATCH_W: if (!ch_latch && !ch_busy) begin
                        sr_oe_n <= 1'b0;
                        state <= ret;
                    end
                    S_PULSE: state <= S_PULSE_ON;  // lines are set; rram_pulse: guard, PULSE_CYCLES, guard
                    S_PULSE_ON: begin
                        if (pulse_on) drive_en <= 1'b1;
                        if (pulse_off) begin
                            drive_en <= 1'b0;
                            pulse_count <= pulse_count + pulse_inc;
                            state <= S_PULSE_OFF;
                        end
                    end
                    S_PULSE_OFF: if (pulse_done) begin
                        wl_en <= 1'b0;
                        sl_mode <= SL_FLOAT;
                        sr_oe_n <= 1'b1;
                        state <= ret;
                    end
                    S_DRV_GUARD: if (cnt == 32'd0) begin  // lines are set: the guard, then drive for a read
                        drive_en <= 1'b1;
                        state <= gret;
                    end else cnt <= cnt - 1'b1;
                    S_SMP: begin  // drive is on: settle, then one ADC conversion of adc_col
                        cnt <= {16'd0, settle_cycles};
                        state <= S_SMP_GO;
                    end
                    S_SMP_GO: if (cnt == 32'd0) begin
                        if (!adc_busy) begin
                            adc_go <= 1'b1;
                            state <= S_SMP_W;
                        end
                    end else cnt <= cnt - 1'b1;
                    S_SMP_W: if (!adc_go && !adc_busy) begin
                        code <= adc_code;
                        if (adc_code == CODE_MIN || adc_code == CODE_MAX) sat_count <= sat_count + 1'b1;
                        state <= ret;
                    end

                    // ---- FORM: region SLs at V_SL, region BLs grounded, region WLs on, one pulse ----
                    S_FORM: begin
                        pat_lo <= row_start;
                        pat_hi <= row_end[15:0] - 1'b1;
                        pat_in <= NIB_GND;
                        pat_out <= NIB_FLOAT;
                        ret <= S_FORM_P;
                        state <= S_GEN;
                    end
                    S_FORM_P: begin
                        col_lo <= col_start[CW-1:0];
                        col_hi <= col_end[CW-1:0] - 1'b1;
                        sl_mode <= SL_VSL;
                        wl_en <= 1'b1;
                        pulse_inc <= {16'd0, row_count} * {16'd0, col_count};
                        ret <= S_END;
                        state <= S_PULSE;
                    end

                    // ---- RESET / SET / PROGRAM: one cell at a time, in stream order ----
                    S_CELL: begin
                        ret <= S_CELL_CHK;
                        state <= S_IN;
                    end
                    S_CELL_CHK: begin
                        cur_row <= cell_row;
                        cur_col <= cell_col[CW-1:0];
                        if (cell_bad) begin
                            pend_err <= E_BAD_CELL;
                            state <= in_word_last ? S_FIN : S_DRAIN;
                        end else if (in_premature) begin
                            pend_err <= E_UNDERRUN;
                            state <= S_FIN;
                        end else if (op == OP_PROGRAM) begin
                            ret <= S_CELL_T;
                            state <= S_IN;
                        end else state <= S_RS_GO;
                    end
                    S_CELL_T: begin  // PROGRAM target word
                        target <= $signed(in_word);
                        k <= 16'd0;
                        if (in_premature) begin
                            pend_err <= E_UNDERRUN;
                            state <= S_FIN;
                        end else state <= S_PV_READ;
                    end
                    S_RS_GO: begin  // RESET: BL grounded, SL at V_SL; SET: BL at V_BL, SL grounded
                        pat_lo <= cur_row;
                        pat_hi <= cur_row;
                        pat_in <= (op == OP_RESET) ? NIB_GND : NIB_VBL;
                        pat_out <= NIB_FLOAT;
                        ret <= S_RS_P;
                        state <= S_GEN;
                    end
                    S_RS_P: begin
                        col_lo <= cur_col;
                        col_hi <= cur_col;
                        sl_mode <= (op == OP_RESET) ? SL_VSL : SL_GND;
                        wl_en <= 1'b1;
                        pulse_inc <= 32'd1;
                        ret <= S_CELL_NEXT;
                        state <= S_PULSE;
                    end
                    S_CELL_NEXT: begin
                        cell_pos <= cell_pos + 1'b1;
                        state <= (cell_pos + 1'b1 == cell_count) ? S_END : S_CELL;
                    end
                    S_PV_READ: begin  // verify read: the cell_pos's BL at V_READ, the others grounded
                        pat_lo <= cur_row;
                        pat_hi <= cur_row;
                        pat_in <= NIB_VREAD;
                        pat_out <= NIB_GND;
                        ret <= S_PV_DRV;
                        state <= S_GEN;
                    end
                    S_PV_DRV: begin
                        col_lo <= cur_col;
                        col_hi <= cur_col;
                        sl_mode <= SL_SENSE;
                        wl_en <= 1'b1;
                        adc_col <= cur_col;
                        ret <= S_PV_MUL;
                        gret <= S_SMP;
                        cnt <= {16'd0, guard_cycles};
                        state <= S_DRV_GUARD;
                    end
                    S_PV_MUL: begin  // the tolerance products, registered (timing: no 64-bit multiply-compare in one clock)
                        lhs_r <= lhs;
                        rhs_r <= rhs;
                        state <= S_PV_CHK;
                    end
                    S_PV_CHK: begin
                        lines_idle();
                        if (verified || k == max_pulses) begin
                            push_d <= {k, {2{code[13]}}, code};  // final_code & 0xFFFF: 16-bit two's complement
                            ret <= S_CELL_NEXT;
                            state <= S_PUSH;
                        end else begin  // one pulse towards the target
                            pat_lo <= cur_row;
                            pat_hi <= cur_row;
                            pat_in <= (32'(code) < target) ? NIB_VBL : NIB_GND;
                            pat_out <= NIB_FLOAT;
                            ret <= S_PV_P;
                            state <= S_GEN;
                        end
                    end
                    S_PV_P: begin
                        col_lo <= cur_col;
                        col_hi <= cur_col;
                        sl_mode <= (pat_in == NIB_VBL) ? SL_GND : SL_VSL;
                        wl_en <= 1'b1;
                        pulse_inc <= 32'd1;
                        ret <= S_PV_OUT;
                        state <= S_PULSE;
                    end
                    S_PV_OUT: begin
                        k <= k + 1'b1;
                        state <= S_PV_READ;
                    end

                    // ---- READ: per row, its BL at V_READ, the others grounded; sample each column ----
                    S_RD_ROW: begin
                        pat_lo <= row_start + b;
                        pat_hi <= row_start + b;
                        pat_in <= NIB_VREAD;
                        pat_out <= NIB_GND;
                        j <= 16'd0;
                        ret <= S_RD_DRV;
                        state <= S_GEN;
                    end
                    S_RD_DRV: begin
                        col_lo <= col_start[CW-1:0];
                        col_hi <= col_end[CW-1:0] - 1'b1;
                        sl_mode <= SL_SENSE;
                        wl_en <= 1'b1;
                        gret <= S_RD_SMP;
                        cnt <= {16'd0, guard_cycles};
                        state <= S_DRV_GUARD;
                    end
                    S_RD_SMP: begin
                        adc_col <= col_start[CW-1:0] + j[CW-1:0];
                        ret <= S_RD_CODE;
                        state <= S_SMP;
                    end
                    S_RD_CODE: begin
                        push_d <= 32'($signed(code));
                        j <= j + 1'b1;
                        if (j + 1'b1 == col_count) begin
                            lines_idle();
                            b <= b + 1'b1;
                            ret <= (b + 1'b1 == row_count) ? S_END : S_RD_ROW;
                        end else ret <= S_RD_SMP;
                        state <= S_PUSH;
                    end

                    // ---- MULTIPLY: per chain frame from the stream, sample the column range ----
                    S_MU_FRAME: begin
                        w <= 7'd0;
                        state <= S_MU_WORD;
                    end
                    S_MU_WORD: begin
                        ret <= S_MU_SHIFT;
                        state <= S_IN;
                    end
                    S_MU_SHIFT: if (!ch_shift && !ch_busy) begin
                        if (in_premature) begin
                            pend_err <= E_UNDERRUN;
                            lines_idle();
                            state <= S_FIN;
                        /* verilator lint_off UNSIGNED */  // constant true when ROWS = 512
                        end else if (word_bad && w >= SKIP_WORDS) begin  // the word reaches a BL of this array
                        /* verilator lint_on UNSIGNED */
                            pend_err <= E_BAD_FRAME;
                            lines_idle();
                            state <= in_word_last ? S_FIN : S_DRAIN;
                        end else begin
                            /* verilator lint_off UNSIGNED */  // constant true when ROWS = 512
                            if (w >= SKIP_WORDS) begin  // words for absent 595s are dropped
                            /* verilator lint_on UNSIGNED */
                                ch_word <= in_word;
                                ch_shift <= 1'b1;
                            end
                            w <= w + 1'b1;
                            if (w == FRAME_WORDS - 1'b1) begin
                                ret <= S_MU_DRV;
                                state <= S_LATCH;
                            end else state <= S_MU_WORD;
                        end
                    end
                    S_MU_DRV: begin
                        col_lo <= col_start[CW-1:0];
                        col_hi <= col_end[CW-1:0] - 1'b1;
                        sl_mode <= SL_SENSE;
                        wl_en <= 1'b1;
                        j <= 16'd0;
                        gret <= S_MU_SMP;
                        cnt <= {16'd0, guard_cycles};
                        state <= S_DRV_GUARD;
                    end
                    S_MU_SMP: begin
                        adc_col <= col_start[CW-1:0] + j[CW-1:0];
                        ret <= S_MU_CODE;
                        state <= S_SMP;
                    end
                    S_MU_CODE: begin
                        j <= j + 1'b1;
                        if (k == 16'(bits) - 1'b1) begin  // last bit-plane: this column's result goes out
                            push_d <= 32'(acc_sum);
                            ret <= (j + 1'b1 == col_count) ? S_MU_NEXT : S_MU_SMP;
                            state <= S_PUSH;
                        end else state <= (j + 1'b1 == col_count) ? S_MU_NEXT : S_MU_SMP;
                    end
                    S_MU_NEXT: begin
                        lines_idle();
                        if (k == 16'(bits) - 1'b1) begin
                            k <= 16'd0;
                            b <= b + 1'b1;
                            state <= (b + 1'b1 == batch) ? S_END : S_MU_FRAME;
                        end else begin
                            k <= k + 1'b1;
                            state <= S_MU_FRAME;
                        end
                    end

                    // ---- the end of every operation ----
                    S_END: begin  // success: drop what is left of the input packet, then finish
                        lines_idle();
                        state <= (in_taken && !in_word_last) ? S_DRAIN : S_FIN;
                    end
                    S_DRAIN: if (s_tvalid && s_tlast) state <= S_FIN;
                    S_FIN: begin
                        lines_idle();
                        if (out_free) begin  // the held word goes out with TLAST
                            if (hold_v) begin
                                m_tdata <= hold_d;
                                m_tlast <= 1'b1;
                                m_tvalid <= 1'b1;
                                hold_v <= 1'b0;
                            end
                            state <= S_FIN2;
                        end
                    end
                    S_FIN2: if (!m_tvalid && !ch_busy && !adc_busy && !ch_shift && !ch_latch && !adc_go) begin
                        busy <= 1'b0;
                        m_tlast <= 1'b0;
                        err_code <= pend_err;  // status and the interrupt change only here, at the end
                        if (pend_err == E_NONE) begin
                            done <= 1'b1;
                            op_count <= op_count + 1'b1;
                        end else error <= 1'b1;
                        state <= S_IDLE;
                    end
                    S_ABORT: if (!ch_busy && !adc_busy && !ch_shift && !ch_latch && !adc_go) begin
                        busy <= 1'b0;  // peripherals finish their frame (bounded), the output is not waited on
                        err_code <= pend_err;
                        error <= 1'b1;
                        state <= S_IDLE;
                    end
                    default: state <= S_IDLE;
                endcase
            end
        end
    end

endmodule
