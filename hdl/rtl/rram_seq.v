`timescale 1ns / 1ps
`include "rram_defines.vh"
// Command sequencer of the rramctl overlay: FORM, RESET, SET, PROGRAM (write-verify), READ,
// MULTIPLY, NOP, IDLE exactly as docs/protocol.md describes them, over the line-drive pins of
// docs/hdl.md.  Parameter errors are found at START (no BUSY, no op serial); stream errors
// (BAD_CELL, UNDERRUN) are found word by word in stream order.  The operation runs on the parameter values
// accepted at START (the *_q copies below, loaded while idle): a register write while BUSY reaches the
// next START only, so no write can change a running operation or get past START's checks.  Every operation, failed or not,
// ends with every line in the safe idle state: 595 outputs off (OE high -> the board's pull-ups
// inhibit every CD4051B, ours), drive enable, WLs and SL drivers off.
// This module is the operation flow per opcode; it hands the parts of an operation to sub-modules over
// explicit handshakes (docs/hdl.md, "Sequencer"): rram_stream_in (a word from MM2S, drain to TLAST),
// rram_stream_out (a word to S2MM through the TLAST holding register), rram_chain_frame (a BL chain frame
// from a row pattern or from host words, latched), rram_pulse (guard, pulse, guard), rram_sample (settle,
// one ADC conversion), rram_accumulate (MULTIPLY sums) and rram_status (status and counters).
module rram_seq #(
    parameter integer ROWS = `RRAM_ARRAY_LINES,
    parameter integer COLS = `RRAM_ARRAY_LINES
) (
    input  wire        clk,
    input  wire        rst_n,
    // control and parameter registers
    input  wire        start,
    input  wire        abort_req,
    input  wire        clear,
    input  wire        rating_err,  // a DAC frame was refused by the ratings (OVER_RATING when idle)
    // (port widths: the register fields, `RRAM_<REG>_<FIELD>_WIDTH from rram_ctrl.rdl)
    input  wire [`RRAM_OPCODE_OP_WIDTH-1:0] opcode,
    input  wire [`RRAM_ROW_START_VALUE_WIDTH-1:0] row_start,
    input  wire [`RRAM_ROW_COUNT_VALUE_WIDTH-1:0] row_count,
    input  wire [`RRAM_COL_START_VALUE_WIDTH-1:0] col_start,
    input  wire [`RRAM_COL_COUNT_VALUE_WIDTH-1:0] col_count,
    input  wire [`RRAM_PULSE_CYCLES_CYCLES_WIDTH-1:0] pulse_cycles,
    input  wire [`RRAM_BITS_VALUE_WIDTH-1:0] bits,
    input  wire [`RRAM_BATCH_VALUE_WIDTH-1:0] batch,
    input  wire [`RRAM_CELL_COUNT_VALUE_WIDTH-1:0] cell_count,
    input  wire [`RRAM_VERIFY_TOL_PPM_WIDTH-1:0] verify_tol,
    input  wire [`RRAM_MAX_PULSES_VALUE_WIDTH-1:0] max_pulses,
    input  wire [`RRAM_SETTLE_CYCLES_CYCLES_WIDTH-1:0] settle_cycles,
    input  wire [`RRAM_GUARD_CYCLES_CYCLES_WIDTH-1:0] guard_cycles,  // lines set -> drive_en, drive_en off -> lines floating, mux address -> INH (GUARD_CYCLES)
    input  wire [`RRAM_TIA_GAIN_HIGH_WIDTH-1:0] tia_gain_reg,  // TIA_GAIN: the tia_gain pin follows it while idle
    // status
    output wire        busy,
    output wire        done,
    output wire        error,
    output wire [`RRAM_STATUS_ERR_CODE_WIDTH-1:0] err_code,
    output wire        start_refused,  // a START came while BUSY and was ignored (sticky until CLEAR/START)
    output wire [`RRAM_OP_COUNT_COUNT_WIDTH-1:0] op_count,
    output wire [`RRAM_PULSE_COUNT_COUNT_WIDTH-1:0] pulse_count,
    output wire [`RRAM_OUT_WORDS_COUNT_WIDTH-1:0] out_words,
    output wire [`RRAM_SAT_COUNT_COUNT_WIDTH-1:0] sat_count,
    // SN74HC595 chain driver
    output wire        ch_shift,
    output wire        ch_latch,
    output wire [31:0] ch_word,
    input  wire        ch_busy,
    output reg         sr_oe_n,
    // SL/WL drivers (docs/hdl.md)
    output reg  [CW-1:0] col_lo,
    output reg  [CW-1:0] col_hi,
    output reg  [`RRAM_SL_MODE_WIDTH-1:0] sl_mode,
    output reg         wl_en,
    output reg         drive_en,
    output wire        tia_gain,  // TIA feedback select: TIA_GAIN, held at its START value while BUSY
    // ADC
    output wire        adc_go,
    output reg  [CW-1:0] adc_col,
    input  wire        adc_busy,
    input  wire signed [`RRAM_ADC_BITS-1:0] adc_code,
    // AXI-Stream in (MM2S) and out (S2MM)
    input  wire [31:0] s_tdata,
    input  wire        s_tvalid,
    input  wire        s_tlast,
    output wire        s_tready,
    output wire [31:0] m_tdata,
    output wire        m_tvalid,
    output wire        m_tlast,
    input  wire        m_tready
);
    `include "rram_protocol.vh"
    localparam integer CW = $clog2(COLS);
    localparam integer ACCW = 24;  // 14-bit code << 7, summed over 8 bit-planes, fits 22 bits
    localparam integer NB = `RRAM_CHAIN_NIBBLE_BITS;  // bits of a BL's nibble in a chain word
    // |code - target| (write-verify): the target's width, one bit for the difference, one spare
    localparam integer DW = `RRAM_PROGRAM_TARGET_CODE_WIDTH + 2;
    localparam integer MW = 64;  // the tolerance products (ours; the check below: they do not overflow)
    generate  // the sums, the tolerance products and the output word hold what the protocol's widths allow
        if (ACCW < 32'(ADC_BITS) + 32'(MAX_BITS) || ACCW > `RRAM_MULTIPLY_RESULT_SUM_WIDTH
            || MW < DW + $bits(VERIFY_TOL_SCALE) + 1 || MW < `RRAM_PROGRAM_TARGET_CODE_WIDTH + `RRAM_VERIFY_TOL_PPM_WIDTH + 1)
        begin : g_bad_widths
            rram_seq_sums_or_verify_products_narrower_than_the_protocol u_stop ();
        end
    endgenerate
    // CD4051B nibbles {INH, C, B, A} (docs/protocol.md; protocol.toml [word.CHAIN_NIBBLE]): INH alone floats the
    // BL, SELECT = the MuxSource channel with INH clear connects it
    localparam [NB-1:0] NIB_FLOAT = NB'(1) << `RRAM_CHAIN_NIBBLE_INH_LSB,
                        NIB_GND = NB'(SRC_GND) << `RRAM_CHAIN_NIBBLE_SELECT_LSB,
                        NIB_VREAD = NB'(SRC_READ) << `RRAM_CHAIN_NIBBLE_SELECT_LSB,
                        NIB_VBL = NB'(SRC_BL_PROG) << `RRAM_CHAIN_NIBBLE_SELECT_LSB;

    // States: the flow of each operation.  S_CELL, S_TGT and S_MU_WORD wait for a word from rram_stream_in,
    // *_FRAME / *_LATCH for rram_chain_frame's `done`, S_FORM_PULSE / S_PULSE_WAIT for rram_pulse's `done`,
    // *_SMPW for rram_sample's `done`, *_PUSH for rram_stream_out to take the word, *_GUARD for the guard
    // before a read drive; a *_SMP state starts a sample.  S_PULSE_* (one cell pulse: RESET, SET, PROGRAM)
    // and S_COLS_* (drive and sample a column range: READ, MULTIPLY) are shared by the operations named.
    localparam [5:0]
        S_IDLE = 6'd0, S_END = 6'd1, S_DRAIN = 6'd2, S_FIN = 6'd3, S_FIN2 = 6'd4, S_ABORT = 6'd5,
        S_FORM = 6'd6, S_FORM_FRAME = 6'd7, S_FORM_DRV = 6'd8, S_FORM_PULSE = 6'd9,
        S_CELL = 6'd10, S_CELL_CHK = 6'd11, S_TGT = 6'd12, S_CELL_T = 6'd13, S_RS_GO = 6'd14, S_PULSE_FRAME = 6'd15,
        S_PULSE_DRV = 6'd16, S_PULSE_WAIT = 6'd17, S_CELL_NEXT = 6'd18,
        S_PV_READ = 6'd19, S_PV_FRAME = 6'd20, S_PV_DRV = 6'd21, S_PV_GUARD = 6'd22, S_PV_SMPW = 6'd23,
        S_PV_MUL = 6'd24, S_PV_CHK = 6'd25, S_PV_PUSH = 6'd26, S_PV_OUT = 6'd27,
        S_RD_ROW = 6'd28, S_RD_FRAME = 6'd29, S_RD_CODE = 6'd30, S_RD_PUSH = 6'd31,
        S_COLS_DRV = 6'd32, S_COLS_GUARD = 6'd33, S_COLS_SMP = 6'd34, S_COLS_SMPW = 6'd35,
        S_MU_FRAME = 6'd36, S_MU_WORD = 6'd37, S_MU_SHIFT = 6'd38, S_MU_LATCH = 6'd39, S_MU_CODE = 6'd40,
        S_MU_PUSH = 6'd41, S_MU_NEXT = 6'd42;

    reg [5:0] state;
    reg [`RRAM_STATUS_ERR_CODE_WIDTH-1:0] pend_err;  // the error of the running operation: reported in STATUS when it ends
    reg [`RRAM_OPCODE_OP_WIDTH-1:0] op;
    reg [`RRAM_GUARD_CYCLES_CYCLES_WIDTH-1:0] guard_left;  // *_GUARD: clocks before drive_en rises
    reg [`RRAM_CELL_COUNT_VALUE_WIDTH-1:0] cell_pos;  // position in the cell list
    // k and b each hold one of two fields: the wider of the two
    localparam integer KP = `RRAM_MAX_PULSES_VALUE_WIDTH, KB = `RRAM_BITS_VALUE_WIDTH;
    localparam integer KW = (KP > KB) ? KP : KB;
    localparam integer BB = `RRAM_BATCH_VALUE_WIDTH, BR = `RRAM_ROW_COUNT_VALUE_WIDTH;
    localparam integer BW = (BB > BR) ? BB : BR;
    localparam integer RW = `RRAM_ROW_INDEX_WIDTH;  // a row number
    reg [KW-1:0] k;  // PROGRAM: pulses applied to this cell (MAX_PULSES); MULTIPLY: bit-plane (BITS)
    reg [BW-1:0] b;  // MULTIPLY: vector (BATCH); READ: row offset (ROW_COUNT)
    reg [`RRAM_COL_COUNT_VALUE_WIDTH-1:0] j;  // READ / MULTIPLY: column offset (COL_COUNT)
    reg [RW-1:0] cur_row;
    reg [CW-1:0] cur_col;
    reg signed [`RRAM_PROGRAM_TARGET_CODE_WIDTH-1:0] target;  // PROGRAM: the cell's target code
    reg [RW-1:0] pat_lo, pat_hi;  // rows pat_lo..pat_hi get pat_in, the others pat_out
    reg [NB-1:0] pat_in, pat_out;
    localparam integer PIW = `RRAM_PULSE_COUNT_COUNT_WIDTH;
    reg [PIW-1:0] pulse_inc;  // pulses one programming pulse adds to PULSE_COUNT
    reg [31:0] push_d;  // the next output word
    reg frame_go, pulse_go, smp_go;  // one-clock starts of rram_chain_frame, rram_pulse, rram_sample

    // ---- the parameters of the running operation: every parameter register as accepted at START ----
    // Loaded on every clock the sequencer is idle, so on the clock a START is accepted they take the values
    // START checked (start_err below reads the registers themselves); held from then until the end.
    reg [`RRAM_ROW_START_VALUE_WIDTH-1:0] row_start_q;
    reg [`RRAM_ROW_COUNT_VALUE_WIDTH-1:0] row_count_q;
    reg [CW-1:0] col_start_q;  // (START checked col_start + col_count <= COLS)
    reg [`RRAM_COL_COUNT_VALUE_WIDTH-1:0] col_count_q;
    reg [`RRAM_PULSE_CYCLES_CYCLES_WIDTH-1:0] pulse_cycles_q;
    reg [`RRAM_BITS_VALUE_WIDTH-1:0] bits_q;
    reg [`RRAM_BATCH_VALUE_WIDTH-1:0] batch_q;
    reg [`RRAM_CELL_COUNT_VALUE_WIDTH-1:0] cell_count_q;
    reg [`RRAM_VERIFY_TOL_PPM_WIDTH-1:0] verify_tol_q;
    reg [`RRAM_MAX_PULSES_VALUE_WIDTH-1:0] max_pulses_q;
    reg [`RRAM_SETTLE_CYCLES_CYCLES_WIDTH-1:0] settle_cycles_q;
    reg [`RRAM_GUARD_CYCLES_CYCLES_WIDTH-1:0] guard_cycles_q;
    reg [`RRAM_TIA_GAIN_HIGH_WIDTH-1:0] tia_gain_q;
    always @(posedge clk or negedge rst_n) begin
        if (!rst_n) begin
            row_start_q <= '0;
            row_count_q <= '0;
            col_start_q <= '0;
            col_count_q <= '0;
            pulse_cycles_q <= '0;
            bits_q <= '0;
            batch_q <= '0;
            cell_count_q <= '0;
            verify_tol_q <= '0;
            max_pulses_q <= '0;
            settle_cycles_q <= '0;
            guard_cycles_q <= '0;
            tia_gain_q <= '0;
        end else if (state == S_IDLE) begin
            row_start_q <= row_start;
            row_count_q <= row_count;
            col_start_q <= col_start[CW-1:0];
            col_count_q <= col_count;
            pulse_cycles_q <= pulse_cycles;
            bits_q <= bits;
            batch_q <= batch;
            cell_count_q <= cell_count;
            verify_tol_q <= verify_tol;
            max_pulses_q <= max_pulses;
            settle_cycles_q <= settle_cycles;
            guard_cycles_q <= guard_cycles;
            tia_gain_q <= tia_gain_reg;
        end
    end
    assign tia_gain = tia_gain_q[0];
    wire [RW-1:0] row_last_q = row_start_q + row_count_q - 1'b1;  // the region's last row and column (START checked them)
    wire [CW-1:0] col_last_q = col_start_q + col_count_q[CW-1:0] - 1'b1;

    // ---- parameter checks at START (docs/protocol.md, "Error codes"; order as in the emulator) ----
    // start + count: one bit above the wider of the two fields, so the sum cannot wrap
    localparam integer RSW = `RRAM_ROW_START_VALUE_WIDTH, RCW = `RRAM_ROW_COUNT_VALUE_WIDTH;
    localparam integer CSW = `RRAM_COL_START_VALUE_WIDTH, CCW = `RRAM_COL_COUNT_VALUE_WIDTH;
    localparam integer REW = ((RSW > RCW) ? RSW : RCW) + 1, CEW = ((CSW > CCW) ? CSW : CCW) + 1;
    wire [REW-1:0] row_end = REW'(row_start) + REW'(row_count);
    wire [CEW-1:0] col_end = CEW'(col_start) + CEW'(col_count);
    wire row_bad = (row_count == '0) || (row_end > REW'(ROWS));
    wire col_bad = (col_count == '0) || (col_end > CEW'(COLS));
    wire pulse_op = (opcode == OP_FORM) || (opcode == OP_RESET) || (opcode == OP_SET) || (opcode == OP_PROGRAM);
    reg [`RRAM_STATUS_ERR_CODE_WIDTH-1:0] start_err;
    localparam integer NEED_W = `RRAM_STREAM_NEED_WIDTH;
    reg [NEED_W-1:0] in_need;  // stream words the operation needs
    always @* begin
        start_err = E_NONE;
        if (opcode >= `RRAM_OPCODE_OP_WIDTH'(N_OP)) start_err = E_BAD_OPCODE;  // the opcodes are 0 .. N_OP-1 (the generator checks)
        else if ((opcode == OP_FORM || opcode == OP_READ) && (row_bad || col_bad)) start_err = E_BAD_REGION;
        else if (opcode == OP_MULTIPLY && col_bad) start_err = E_BAD_REGION;
        else if (opcode == OP_MULTIPLY && (bits == '0 || bits > MAX_BITS || batch == '0)) start_err = E_BAD_BITS;
        else if (pulse_op && (pulse_cycles == '0 || pulse_cycles > MAX_PULSE_CYCLES)) start_err = E_BAD_PULSE;
        case (opcode)
            OP_RESET, OP_SET: in_need = NEED_W'(cell_count);
            OP_PROGRAM: in_need = NEED_W'(cell_count) * NEED_W'(PROGRAM_WORDS_PER_CELL);  // cell word, target word
            OP_MULTIPLY: in_need = NEED_W'(batch) * NEED_W'(bits) * NEED_W'(FRAME_WORDS);
            default: in_need = '0;
        endcase
    end
    wire accept = (state == S_IDLE) && start;  // the idle sequencer takes a START
    wire go = accept && start_err == E_NONE;  // ... and an operation starts
    wire aborting = busy && abort_req && state != S_ABORT;

    // ---- status and counters (rram_status) ----
    wire pulse_on, pulse_off, pulse_done;
    wire smp_done, smp_rail, smp_idle;
    wire cf_idle;
    wire out_empty;
    wire quiet = cf_idle && smp_idle;  // no chain word, latch or ADC conversion under way
    wire finish = !aborting && ((state == S_FIN2 && out_empty && quiet) || (state == S_ABORT && quiet));
    rram_status u_status (
        .clk(clk), .rst_n(rst_n), .start(start), .clear(clear), .rating_err(rating_err),
        .accept(accept), .start_err(start_err), .finish(finish), .result(pend_err),
        .pulse(pulse_off && !aborting), .pulses(pulse_inc), .sat(smp_done && smp_rail && !aborting),
        .busy(busy), .done(done), .error(error), .err_code(err_code), .start_refused(start_refused),
        .op_count(op_count), .pulse_count(pulse_count), .sat_count(sat_count)
    );

    // ---- stream in (MM2S): cell / target words, MULTIPLY chain words; drain to TLAST ----
    wire in_take, in_drained, in_premature, in_open;
    wire [31:0] in_word;
    rram_stream_in u_in (
        .clk(clk), .rst_n(rst_n), .start(go), .need(in_need),
        .fetch(state == S_CELL || state == S_TGT || state == S_MU_WORD), .drain(state == S_DRAIN),
        .take(in_take), .drained(in_drained), .word(in_word), .premature(in_premature),
        .open(in_open), .s_tdata(s_tdata), .s_tvalid(s_tvalid), .s_tlast(s_tlast), .s_tready(s_tready)
    );

    // ---- stream out (S2MM) through the TLAST holding register ----
    wire out_ready;
    wire out_push = state == S_PV_PUSH || state == S_RD_PUSH || state == S_MU_PUSH;
    rram_stream_out u_out (
        .clk(clk), .rst_n(rst_n), .start(go), .abort(aborting), .push(out_push), .data(push_d),
        .flush(state == S_FIN), .ready(out_ready), .empty(out_empty), .count(out_words),
        .m_tdata(m_tdata), .m_tvalid(m_tvalid), .m_tlast(m_tlast), .m_tready(m_tready)
    );

    // ---- BL chain frames: from the row pattern (pat_*) or MULTIPLY words from the stream ----
    // MULTIPLY chain words from the host: no nibble may connect a BL to V_BL (a programming level) during a
    // read; a nibble is {INH, C, B, A} (docs/protocol.md; CHAIN_NIBBLE)
    reg word_bad;
    integer pi;
    always @* begin
        word_bad = 1'b0;
        for (pi = 0; pi < 32 / NB; pi = pi + 1)
            if (in_word[NB * pi + `RRAM_CHAIN_NIBBLE_INH_LSB] == 1'b0
                && in_word[NB * pi + `RRAM_CHAIN_NIBBLE_SELECT_LSB +: `RRAM_CHAIN_NIBBLE_SELECT_WIDTH] == SRC_BL_PROG)
                word_bad = 1'b1;
    end
    wire cf_real, cf_last, cf_ready, cf_addr, cf_done;
    wire mu_bad = word_bad && cf_real;  // the word reaches a BL of this array
    rram_chain_frame #(.ROWS(ROWS)) u_frame (
        .clk(clk), .rst_n(rst_n), .abort(aborting), .guard(guard_cycles_q), .gen(frame_go), .lo(pat_lo), .hi(pat_hi), .nib_in(pat_in),
        .nib_out(pat_out), .frame(state == S_MU_FRAME), .put(state == S_MU_SHIFT && !in_premature && !mu_bad),
        .put_word(in_word), .real_word(cf_real), .last_word(cf_last), .ready(cf_ready), .addr(cf_addr), .done(cf_done),
        .idle(cf_idle), .ch_shift(ch_shift), .ch_latch(ch_latch), .ch_word(ch_word), .ch_busy(ch_busy)
    );

    // ---- programming pulse timing (rram_pulse): drive_en rises on `on`, falls on `off` ----
    rram_pulse u_pulse (
        .clk(clk), .rst_n(rst_n), .start(pulse_go), .abort(aborting), .guard(guard_cycles_q),
        .width(pulse_cycles_q), .on(pulse_on), .off(pulse_off), .done(pulse_done)
    );

    // ---- one sample of adc_col (rram_sample): settle, one conversion ----
    wire signed [ADC_BITS-1:0] code;
    rram_sample u_sample (
        .clk(clk), .rst_n(rst_n), .start(smp_go), .abort(aborting), .settle(settle_cycles_q), .done(smp_done),
        .rail(smp_rail), .idle(smp_idle), .code(code), .adc_go(adc_go), .adc_busy(adc_busy), .adc_code(adc_code)
    );

    // ---- write-verify acceptance: |code - target| * 1e6 <= target * VERIFY_TOL (docs/protocol.md) ----
    wire signed [DW-1:0] diff = DW'(code) - DW'(target);
    wire [DW-1:0] adiff = diff[DW-1] ? DW'(-diff) : diff;
    wire signed [MW-1:0] lhs = $signed(MW'(adiff)) * $signed(MW'(VERIFY_TOL_SCALE));
    wire signed [MW-1:0] rhs = MW'(target) * $signed(MW'(verify_tol_q));
    reg signed [MW-1:0] lhs_r, rhs_r;  // registered products (S_PV_MUL): the compare runs a clock later
    wire verified = lhs_r <= rhs_r;

    // MULTIPLY: per-column shift-and-add of the samples (rram_accumulate)
    wire signed [ACCW-1:0] acc_sum;
    rram_accumulate #(.COLS(COLS), .ACCW(ACCW)) u_acc (
        .clk(clk), .we(state == S_MU_CODE), .col(j[CW-1:0]), .plane(k[`RRAM_PLANE_WIDTH-1:0]), .code(code), .sum(acc_sum)
    );

    wire [`RRAM_CELL_ROW_WIDTH-1:0] cell_row = in_word[`RRAM_CELL_ROW];
    wire [`RRAM_CELL_COL_WIDTH-1:0] cell_col = in_word[`RRAM_CELL_COL];
    wire [31:0] program_result;  // PROGRAM's output word: final_code & 0xFFFF is 16-bit two's complement
    assign program_result[`RRAM_PROGRAM_RESULT_PULSES] = k;
    assign program_result[`RRAM_PROGRAM_RESULT_CODE] = `RRAM_PROGRAM_RESULT_CODE_WIDTH'($signed(code));
    wire [31:0] read_result;  // READ's output word: the code sign-extended
    assign read_result[`RRAM_READ_RESULT_CODE] = `RRAM_READ_RESULT_CODE_WIDTH'($signed(code));
    wire [31:0] multiply_result;  // MULTIPLY's output word: the column's shift-and-add sum sign-extended
    assign multiply_result[`RRAM_MULTIPLY_RESULT_SUM] = `RRAM_MULTIPLY_RESULT_SUM_WIDTH'(acc_sum);
    wire cell_bad = (cell_row >= `RRAM_CELL_ROW_WIDTH'(ROWS)) || (cell_col >= `RRAM_CELL_COL_WIDTH'(COLS));
    wire guard_over = guard_left == '0;

    task automatic lines_idle;
        begin
            sr_oe_n <= 1'b1;
            drive_en <= 1'b0;
            wl_en <= 1'b0;
            sl_mode <= SL_FLOAT;
        end
    endtask

    task automatic pattern(input [RW-1:0] lo, input [RW-1:0] hi, input [NB-1:0] nib_in, input [NB-1:0] nib_out);
        begin  // a chain frame: rows lo..hi get nib_in, the others nib_out
            pat_lo <= lo;
            pat_hi <= hi;
            pat_in <= nib_in;
            pat_out <= nib_out;
            frame_go <= 1'b1;
        end
    endtask

    task automatic window(input [CW-1:0] lo, input [CW-1:0] hi, input [`RRAM_SL_MODE_WIDTH-1:0] mode);
        begin  // the column window's SL drivers in `mode`, its WLs on
            col_lo <= lo;
            col_hi <= hi;
            sl_mode <= mode;
            wl_en <= 1'b1;
        end
    endtask

    always @(posedge clk or negedge rst_n) begin
        if (!rst_n) begin
            state <= S_IDLE;
            op <= OP_NOP;
            pend_err <= E_NONE;
            lhs_r <= '0;
            rhs_r <= '0;
            sr_oe_n <= 1'b1;
            col_lo <= {CW{1'b0}};
            col_hi <= {CW{1'b0}};
            sl_mode <= SL_FLOAT;
            wl_en <= 1'b0;
            drive_en <= 1'b0;
            adc_col <= {CW{1'b0}};
            guard_left <= '0;
            cell_pos <= '0;
            k <= '0;
            b <= '0;
            j <= '0;
            cur_row <= '0;
            cur_col <= {CW{1'b0}};
            target <= `RRAM_PROGRAM_TARGET_CODE_WIDTH'(0);
            pat_lo <= '0;
            pat_hi <= '0;
            pat_in <= NIB_FLOAT;
            pat_out <= NIB_FLOAT;
            pulse_inc <= '0;
            push_d <= '0;
            frame_go <= 1'b0;
            pulse_go <= 1'b0;
            smp_go <= 1'b0;
        end else begin
            frame_go <= 1'b0;
            pulse_go <= 1'b0;
            smp_go <= 1'b0;
            if (aborting) begin  // from any state, a stalled output included (the sub-modules stop too)
                pend_err <= E_ABORTED;
                lines_idle();
                state <= S_ABORT;
            end else begin
                // what the sub-modules' strobes do to the lines, whichever state waits for them
                // a frame's address step is latched (every INH set): the 595 outputs drive the mux addresses;
                // rram_chain_frame latches the frame itself GUARD_CYCLES later (`done`)
                if (cf_addr) sr_oe_n <= 1'b0;
                if (pulse_on) drive_en <= 1'b1;
                if (pulse_off) drive_en <= 1'b0;
                if (pulse_done) begin  // the guard after the pulse: lines floating
                    wl_en <= 1'b0;
                    sl_mode <= SL_FLOAT;
                    sr_oe_n <= 1'b1;
                end
                if (state == S_PV_GUARD || state == S_COLS_GUARD) begin
                    if (guard_over) drive_en <= 1'b1;  // lines are set: the guard, then drive for a read
                    else guard_left <= guard_left - 1'b1;
                end

                case (state)
                    S_IDLE: if (start) begin
                        pend_err <= E_NONE;
                        if (start_err == E_NONE) begin
                            op <= opcode;
                            cell_pos <= '0;
                            k <= '0;
                            b <= '0;
                            j <= '0;
                            case (opcode)
                                OP_FORM: state <= S_FORM;
                                OP_RESET, OP_SET, OP_PROGRAM: state <= (cell_count == '0) ? S_END : S_CELL;
                                OP_READ: state <= S_RD_ROW;
                                OP_MULTIPLY: state <= S_MU_FRAME;
                                default: state <= S_END;  // NOP, IDLE: lines to safe idle
                            endcase
                        end
                    end

                    // ---- FORM: region SLs at V_SL, region BLs grounded, region WLs on, one pulse ----
                    S_FORM: begin
                        pattern(row_start_q, row_last_q, NIB_GND, NIB_FLOAT);
                        state <= S_FORM_FRAME;
                    end
                    S_FORM_FRAME: if (cf_done) state <= S_FORM_DRV;
                    S_FORM_DRV: begin
                        window(col_start_q, col_last_q, SL_VSL);
                        pulse_inc <= PIW'(row_count_q) * PIW'(col_count_q);
                        pulse_go <= 1'b1;
                        state <= S_FORM_PULSE;
                    end
                    S_FORM_PULSE: if (pulse_done) state <= S_END;

                    // ---- RESET / SET / PROGRAM: one cell at a time, in stream order ----
                    S_CELL: if (in_take) state <= S_CELL_CHK;  // the cell word
                    S_CELL_CHK: begin
                        cur_row <= cell_row;
                        cur_col <= cell_col[CW-1:0];
                        if (cell_bad) begin
                            pend_err <= E_BAD_CELL;
                            state <= in_open ? S_DRAIN : S_FIN;
                        end else if (in_premature) begin
                            pend_err <= E_UNDERRUN;
                            state <= S_FIN;
                        end else state <= (op == OP_PROGRAM) ? S_TGT : S_RS_GO;
                    end
                    S_TGT: if (in_take) state <= S_CELL_T;  // PROGRAM: the target word
                    S_CELL_T: begin
                        target <= $signed(in_word[`RRAM_PROGRAM_TARGET_CODE]);
                        k <= '0;
                        if (in_premature) begin
                            pend_err <= E_UNDERRUN;
                            state <= S_FIN;
                        end else state <= S_PV_READ;
                    end
                    S_RS_GO: begin  // RESET: BL grounded, SL at V_SL; SET: BL at V_BL, SL grounded
                        pattern(cur_row, cur_row, (op == OP_RESET) ? NIB_GND : NIB_VBL, NIB_FLOAT);
                        state <= S_PULSE_FRAME;
                    end
                    // ---- one pulse on the cell (RESET, SET, PROGRAM): its pattern is set; frame, drive, pulse ----
                    S_PULSE_FRAME: if (cf_done) state <= S_PULSE_DRV;
                    S_PULSE_DRV: begin  // BL at V_BL: SET direction, SL grounded; BL grounded: RESET direction, SL at V_SL
                        window(cur_col, cur_col, (pat_in == NIB_VBL) ? SL_GND : SL_VSL);
                        pulse_inc <= PIW'(1);
                        pulse_go <= 1'b1;
                        state <= S_PULSE_WAIT;
                    end
                    S_PULSE_WAIT: if (pulse_done) state <= (op == OP_PROGRAM) ? S_PV_OUT : S_CELL_NEXT;
                    S_CELL_NEXT: begin
                        cell_pos <= cell_pos + 1'b1;
                        state <= (cell_pos + 1'b1 == cell_count_q) ? S_END : S_CELL;
                    end
                    S_PV_READ: begin  // verify read: the cell's BL at V_READ, the others grounded
                        pattern(cur_row, cur_row, NIB_VREAD, NIB_GND);
                        state <= S_PV_FRAME;
                    end
                    S_PV_FRAME: if (cf_done) state <= S_PV_DRV;
                    S_PV_DRV: begin
                        window(cur_col, cur_col, SL_SENSE);
                        adc_col <= cur_col;
                        guard_left <= guard_cycles_q;
                        state <= S_PV_GUARD;
                    end
                    S_PV_GUARD: if (guard_over) begin
                        smp_go <= 1'b1;
                        state <= S_PV_SMPW;
                    end
                    S_PV_SMPW: if (smp_done) state <= S_PV_MUL;
                    S_PV_MUL: begin  // the tolerance products, registered (timing: no 64-bit multiply-compare in one clock)
                        lhs_r <= lhs;
                        rhs_r <= rhs;
                        state <= S_PV_CHK;
                    end
                    S_PV_CHK: begin
                        lines_idle();
                        if (verified || k == max_pulses_q) begin
                            push_d <= program_result;
                            state <= S_PV_PUSH;
                        end else begin  // one pulse towards the target
                            pattern(cur_row, cur_row, (`RRAM_PROGRAM_TARGET_CODE_WIDTH'(code) < target) ? NIB_VBL : NIB_GND,
                                    NIB_FLOAT);
                            state <= S_PULSE_FRAME;
                        end
                    end
                    S_PV_PUSH: if (out_ready) state <= S_CELL_NEXT;
                    S_PV_OUT: begin
                        k <= k + 1'b1;
                        state <= S_PV_READ;
                    end

                    // ---- READ: per row, its BL at V_READ, the others grounded; sample each column ----
                    S_RD_ROW: begin
                        pattern(row_start_q + b, row_start_q + b, NIB_VREAD, NIB_GND);
                        j <= '0;
                        state <= S_RD_FRAME;
                    end
                    S_RD_FRAME: if (cf_done) state <= S_COLS_DRV;
                    S_RD_CODE: begin
                        push_d <= read_result;
                        j <= j + 1'b1;
                        if (j + 1'b1 == col_count_q) begin
                            lines_idle();
                            b <= b + 1'b1;
                        end
                        state <= S_RD_PUSH;
                    end
                    S_RD_PUSH: if (out_ready) state <= (j != col_count_q) ? S_COLS_SMP : (b == row_count_q) ? S_END : S_RD_ROW;

                    // ---- READ and MULTIPLY: the frame is set; drive the column range, guard, sample each column ----
                    S_COLS_DRV: begin
                        window(col_start_q, col_last_q, SL_SENSE);
                        j <= '0;
                        guard_left <= guard_cycles_q;
                        state <= S_COLS_GUARD;
                    end
                    S_COLS_GUARD: if (guard_over) state <= S_COLS_SMP;
                    S_COLS_SMP: begin
                        adc_col <= col_start_q + j[CW-1:0];
                        smp_go <= 1'b1;
                        state <= S_COLS_SMPW;
                    end
                    S_COLS_SMPW: if (smp_done) state <= (op == OP_READ) ? S_RD_CODE : S_MU_CODE;

                    // ---- MULTIPLY: per chain frame from the stream, sample the column range ----
                    S_MU_FRAME: state <= S_MU_WORD;  // rram_chain_frame: the next word is word 0
                    S_MU_WORD: if (in_take) state <= S_MU_SHIFT;
                    S_MU_SHIFT: if (cf_ready) begin  // rram_chain_frame takes the word (`put`) unless it is bad
                        if (in_premature) begin
                            pend_err <= E_UNDERRUN;
                            lines_idle();
                            state <= S_FIN;
                        end else if (mu_bad) begin
                            pend_err <= E_BAD_FRAME;
                            lines_idle();
                            state <= in_open ? S_DRAIN : S_FIN;
                        end else state <= cf_last ? S_MU_LATCH : S_MU_WORD;
                    end
                    S_MU_LATCH: if (cf_done) state <= S_COLS_DRV;
                    S_MU_CODE: begin  // rram_accumulate stores this column's sum
                        j <= j + 1'b1;
                        if (k == KW'(bits_q) - 1'b1) begin  // last bit-plane: this column's result goes out
                            push_d <= multiply_result;
                            state <= S_MU_PUSH;
                        end else state <= (j + 1'b1 == col_count_q) ? S_MU_NEXT : S_COLS_SMP;
                    end
                    S_MU_PUSH: if (out_ready) state <= (j == col_count_q) ? S_MU_NEXT : S_COLS_SMP;
                    S_MU_NEXT: begin
                        lines_idle();
                        if (k == KW'(bits_q) - 1'b1) begin
                            k <= '0;
                            b <= b + 1'b1;
                            state <= (b + 1'b1 == batch_q) ? S_END : S_MU_FRAME;
                        end else begin
                            k <= k + 1'b1;
                            state <= S_MU_FRAME;
                        end
                    end

                    // ---- the end of every operation ----
                    S_END: begin  // success: drop what is left of the input packet, then finish
                        lines_idle();
                        state <= in_open ? S_DRAIN : S_FIN;
                    end
                    S_DRAIN: if (in_drained) state <= S_FIN;
                    S_FIN: begin  // rram_stream_out sends the held word with TLAST
                        lines_idle();
                        if (out_ready) state <= S_FIN2;
                    end
                    S_FIN2: if (finish) state <= S_IDLE;  // the last word taken, peripherals quiet: rram_status ends it
                    S_ABORT: if (finish) state <= S_IDLE;  // peripherals finish their frame (bounded), the output is not waited on
                    default: state <= S_IDLE;
                endcase
            end
        end
    end

endmodule
