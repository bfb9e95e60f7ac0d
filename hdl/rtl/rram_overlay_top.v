`timescale 1ns / 1ps
`include "rram_defines.vh"
// rramctl PL overlay top: AXI4-Lite registers (generated, rram_ctrl_regs), the command sequencer,
// the DAC80508 SPI master, the SN74HC595 chain driver, NADC ADS8324 readers behind column
// multiplexers, AXI-Stream in (from AXI DMA MM2S) and out (to S2MM, TLAST on the last word), and
// a level interrupt.  Pins and parameters: docs/hdl.md.  Vivado module reference:
// xilinx.com:module_ref:rram_overlay_top:1.0 (tools/vivado/build_overlay.tcl).
module rram_overlay_top #(
    parameter integer ROWS = `RRAM_ARRAY_LINES,  // bit lines (multiple of 8, at most ARRAY_LINES = 512)
    parameter integer COLS = `RRAM_ARRAY_LINES,  // source lines (power of two, at most ARRAY_LINES)
    parameter integer NADC = 8,  // ADS8324 channels (power of two, below COLS); column j -> ADC j % NADC
    // board clocks in PL clocks; defaults and their datasheet bounds: protocol.toml [clock.*]
    parameter integer DAC_HALF = `RRAM_DAC_HALF,  // DAC80508 SCLK half period
    parameter integer DAC_READ_HALF = `RRAM_DAC_READ_HALF,  // SCLK half period of a DAC read command and the frame after it
    parameter integer SR_HALF = `RRAM_SR_HALF,  // SN74HC595 SRCLK half period
    parameter integer ADC_HALF = `RRAM_ADC_HALF,  // ADS8324 DCLK half period
    parameter integer ADC_MIN_CYCLES = `RRAM_ADC_MIN_CYCLES  // least clocks from CS fall to CS fall (50 kSPS)
) (
    (* X_INTERFACE_PARAMETER = "ASSOCIATED_BUSIF s_axil:s_axis:m_axis, ASSOCIATED_RESET aresetn, FREQ_HZ 100000000" *)
    input  wire        aclk,
    input  wire        aresetn,
    // AXI4-Lite slave (byte addresses, docs/registers.md)
    input  wire        s_axil_awvalid,
    output wire        s_axil_awready,
    input  wire [`RRAM_ADDR_BITS-1:0] s_axil_awaddr,
    input  wire [2:0]  s_axil_awprot,
    input  wire        s_axil_wvalid,
    output wire        s_axil_wready,
    input  wire [31:0] s_axil_wdata,
    input  wire [3:0]  s_axil_wstrb,
    output wire        s_axil_bvalid,
    input  wire        s_axil_bready,
    output wire [1:0]  s_axil_bresp,
    input  wire        s_axil_arvalid,
    output wire        s_axil_arready,
    input  wire [`RRAM_ADDR_BITS-1:0] s_axil_araddr,
    input  wire [2:0]  s_axil_arprot,
    output wire        s_axil_rvalid,
    input  wire        s_axil_rready,
    output wire [31:0] s_axil_rdata,
    output wire [1:0]  s_axil_rresp,
    // AXI-Stream from the DMA (MM2S): cell lists, targets, chain frames
    input  wire [31:0] s_axis_tdata,
    input  wire        s_axis_tvalid,
    input  wire        s_axis_tlast,
    output wire        s_axis_tready,
    // AXI-Stream to the DMA (S2MM): results
    output wire [31:0] m_axis_tdata,
    output wire        m_axis_tvalid,
    output wire        m_axis_tlast,
    input  wire        m_axis_tready,
    (* X_INTERFACE_INFO = "xilinx.com:signal:interrupt:1.0 irq INTERRUPT" *)
    (* X_INTERFACE_PARAMETER = "SENSITIVITY LEVEL_HIGH" *)
    output wire        irq,
    // DAC80508
    output wire        dac_sclk,
    output wire        dac_sync_n,
    output wire        dac_sdin,
    input  wire        dac_sdo,
    // SN74HC595 chain (drives the CD4051B A/B/C/INH of every BL)
    output wire        sr_ser,
    output wire        sr_srclk,
    output wire        sr_rclk,
    output wire        sr_srclr_n,
    output wire        sr_oe_n,
    // SL / WL drivers
    output wire [CW-1:0] col_lo,
    output wire [CW-1:0] col_hi,
    output wire [`RRAM_SL_MODE_WIDTH-1:0] sl_mode,
    output wire        wl_en,
    output wire        drive_en,
    // column multiplexers, TIA, ADS8324s
    output wire [MW-1:0] col_mux,
    output wire        tia_gain,
    output wire [NADC-1:0] adc_cs_n,
    output wire        adc_dclk,
    input  wire [NADC-1:0] adc_dout
);
    `include "rram_regs.vh"
    `include "rram_protocol.vh"
    localparam integer CW = $clog2(COLS);
    localparam integer AW = $clog2(NADC);
    localparam integer MW = CW - AW;  // column-mux address bits per ADC
    localparam integer SW = (AW > 0) ? AW : 1;
    localparam integer LW = `RRAM_DAC_FRAME_DATA_WIDTH;  // a DAC80508 code
    localparam integer LPW = 32 / `RRAM_CHAIN_NIBBLE_BITS;  // BLs per chain word (protocol.toml [word.CHAIN_NIBBLE])

    generate
        if (ROWS % LPW != 0 || ROWS < LPW || ROWS > ARRAY_LINES || COLS > ARRAY_LINES || COLS < 2 || (1 << CW) != COLS
            || (1 << AW) != NADC || NADC >= COLS
            || N_DAC_CH != 4) begin : g_bad_parameters  // N_DAC_CH: the limit tree below is written for four
            rram_overlay_top_parameters_out_of_range_see_docs_hdl_md u_stop ();
        end
    endgenerate

    wire rst_n = aresetn;

    // ---- registers ----
    wire start, abort_req, irq_en, clear;
    wire busy, done, error, start_refused;
    // (widths: the register fields, `RRAM_<REG>_<FIELD>_WIDTH from rram_ctrl.rdl)
    wire [`RRAM_STATUS_ERR_CODE_WIDTH-1:0] err_code;
    wire [`RRAM_OPCODE_OP_WIDTH-1:0] opcode;
    wire [`RRAM_BITS_VALUE_WIDTH-1:0] bits;
    wire [`RRAM_ROW_START_VALUE_WIDTH-1:0] row_start;
    wire [`RRAM_ROW_COUNT_VALUE_WIDTH-1:0] row_count;
    wire [`RRAM_COL_START_VALUE_WIDTH-1:0] col_start;
    wire [`RRAM_COL_COUNT_VALUE_WIDTH-1:0] col_count;
    wire [`RRAM_BATCH_VALUE_WIDTH-1:0] batch;
    wire [`RRAM_MAX_PULSES_VALUE_WIDTH-1:0] max_pulses;
    wire [`RRAM_SETTLE_CYCLES_CYCLES_WIDTH-1:0] settle_cycles;
    wire [`RRAM_GUARD_CYCLES_CYCLES_WIDTH-1:0] guard_cycles;
    wire [`RRAM_PULSE_CYCLES_CYCLES_WIDTH-1:0] pulse_cycles;
    wire [`RRAM_OP_COUNT_COUNT_WIDTH-1:0] op_count;
    wire [`RRAM_PULSE_COUNT_COUNT_WIDTH-1:0] pulse_count;
    wire [`RRAM_OUT_WORDS_COUNT_WIDTH-1:0] out_words;
    wire [`RRAM_SAT_COUNT_COUNT_WIDTH-1:0] sat_count;
    wire [`RRAM_CELL_COUNT_VALUE_WIDTH-1:0] cell_count;
    wire [`RRAM_VERIFY_TOL_PPM_WIDTH-1:0] verify_tol;
    wire [`RRAM_DAC_FRAME_FRAME_WIDTH-1:0] dac_frame;
    wire [`RRAM_DAC_RDATA_FRAME_WIDTH-1:0] dac_rdata;
    wire dac_frame_swmod, dac_busy;
    wire [`RRAM_TIA_GAIN_HIGH_WIDTH-1:0] tia_gain_reg;  // TIA_GAIN; the pin is rram_seq's copy (held while BUSY)

    // Ratings (docs/hdl.md, safety chain): DAC_LIMIT_* bound every DAC_FRAME write to a used channel
    // (and a BRDCAST write by the lowest limit); an over-limit frame never reaches the SPI pins.
    // (a limit is a DAC code: DAC_LIMIT_*.code is as wide as DAC_FRAME.DATA, tools/gen_regmap.py checks it)
    wire [LW-1:0] lim_sl, lim_bl, lim_wl, lim_read;
    localparam integer CHW = $clog2(N_DAC_CH);  // an index of lim
    wire [LW-1:0] lim [0:N_DAC_CH-1];
    assign lim[CHW'(DAC_CH_V_SL)] = lim_sl;
    assign lim[CHW'(DAC_CH_V_BL)] = lim_bl;
    assign lim[CHW'(DAC_CH_V_WL)] = lim_wl;
    assign lim[CHW'(DAC_CH_V_READ)] = lim_read;
    wire [LW-1:0] lim_min01 = (lim[0] < lim[1]) ? lim[0] : lim[1];
    wire [LW-1:0] lim_min23 = (lim[2] < lim[3]) ? lim[2] : lim[3];
    wire [LW-1:0] lim_min = (lim_min01 < lim_min23) ? lim_min01 : lim_min23;
    wire [`RRAM_DAC_FRAME_ADDRESS_WIDTH-1:0] frame_addr = dac_frame[`RRAM_DAC_FRAME_ADDRESS];
    wire [LW-1:0] frame_data = dac_frame[`RRAM_DAC_FRAME_DATA];
    wire [`RRAM_DAC_FRAME_ADDRESS_WIDTH-1:0] frame_ch = frame_addr - DAC80508_REG_DAC0;
    wire frame_is_write = !dac_frame[`RRAM_DAC_FRAME_READ];
    wire frame_on_limited = (frame_addr >= DAC80508_REG_DAC0) && (frame_ch < `RRAM_DAC_FRAME_ADDRESS_WIDTH'(N_DAC_CH));
    wire frame_over = frame_is_write && (
        (frame_on_limited && frame_data > lim[frame_ch[CHW-1:0]])
        || (frame_addr == DAC80508_REG_BRDCAST && frame_data > lim_min));

    // A write to DAC_FRAME holds off every further AXI address (wait states, ours) until its SPI frame
    // is out, so a DAC_RDATA read or a second frame after it never sees a frame in flight.  A write that
    // shifts no frame (no strobe on bits 23:0, or refused by the ratings) releases the gate once its
    // write response is out, so no strobe pattern can leave the bus waiting.
    reg dac_pending, dac_started, dac_go, dac_armed, dac_refused;
    localparam integer BDW = 4;  // ours: up to 15 write responses outstanding
    reg [BDW-1:0] b_debt;  // write addresses accepted minus write responses taken
    wire gate = dac_pending;
    wire awready_i, arready_i;
    assign s_axil_awready = awready_i & ~gate;
    assign s_axil_arready = arready_i & ~gate;
    wire aw_hs = s_axil_awvalid && s_axil_awready;
    wire b_hs = s_axil_bvalid && s_axil_bready;
    wire aw_dac = aw_hs && (s_axil_awaddr[`RRAM_ADDR_BITS-1:2] == REG_DAC_FRAME[`RRAM_ADDR_BITS-1:2]);
    wire spi_go = dac_go && !frame_over;
    always @(posedge aclk or negedge rst_n) begin
        if (!rst_n) begin
            dac_pending <= 1'b0;
            dac_started <= 1'b0;
            dac_go <= 1'b0;
            dac_armed <= 1'b0;
            dac_refused <= 1'b0;
            b_debt <= '0;
        end else begin
            dac_go <= dac_frame_swmod;  // the frame register holds the new value one clock after swmod
            b_debt <= b_debt + BDW'(aw_hs) - BDW'(b_hs);
            if (aw_dac) dac_pending <= 1'b1;
            if (dac_frame_swmod) dac_armed <= 1'b1;
            if (spi_go) begin
                dac_started <= 1'b1;
                dac_refused <= 1'b0;
            end
            if (dac_go && frame_over) begin
                dac_refused <= 1'b1;
                dac_armed <= 1'b0;
                dac_pending <= 1'b0;
            end
            if (dac_started && !dac_go && !dac_busy) begin
                dac_started <= 1'b0;
                dac_armed <= 1'b0;
                dac_pending <= 1'b0;
            end
            if (dac_pending && !dac_armed && !dac_frame_swmod && !aw_dac && b_debt == '0) dac_pending <= 1'b0;
        end
    end

    rram_ctrl_regs u_regs (
        .clk(aclk),
        .arst_n(rst_n),
        .s_axil_awready(awready_i),
        .s_axil_awvalid(s_axil_awvalid & ~gate),
        .s_axil_awaddr(s_axil_awaddr),
        .s_axil_awprot(s_axil_awprot),
        .s_axil_wready(s_axil_wready),
        .s_axil_wvalid(s_axil_wvalid),
        .s_axil_wdata(s_axil_wdata),
        .s_axil_wstrb(s_axil_wstrb),
        .s_axil_bready(s_axil_bready),
        .s_axil_bvalid(s_axil_bvalid),
        .s_axil_bresp(s_axil_bresp),
        .s_axil_arready(arready_i),
        .s_axil_arvalid(s_axil_arvalid & ~gate),
        .s_axil_araddr(s_axil_araddr),
        .s_axil_arprot(s_axil_arprot),
        .s_axil_rready(s_axil_rready),
        .s_axil_rvalid(s_axil_rvalid),
        .s_axil_rdata(s_axil_rdata),
        .s_axil_rresp(s_axil_rresp),
        .hwif_out_ctrl_start(start),
        .hwif_out_ctrl_abort(abort_req),
        .hwif_out_ctrl_irq_en(irq_en),
        .hwif_out_ctrl_clear(clear),
        .hwif_in_status_busy(busy),
        .hwif_in_status_done(done),
        .hwif_in_status_error(error),
        .hwif_in_status_start_refused(start_refused),
        .hwif_in_status_err_code(err_code),
        .hwif_out_opcode_op(opcode),
        .hwif_out_row_start_value(row_start),
        .hwif_out_row_count_value(row_count),
        .hwif_out_col_start_value(col_start),
        .hwif_out_col_count_value(col_count),
        .hwif_out_pulse_cycles_cycles(pulse_cycles),
        .hwif_out_bits_value(bits),
        .hwif_out_batch_value(batch),
        .hwif_out_cell_count_value(cell_count),
        .hwif_out_tia_gain_high(tia_gain_reg),
        .hwif_out_verify_tol_ppm(verify_tol),
        .hwif_out_max_pulses_value(max_pulses),
        .hwif_out_dac_frame_frame(dac_frame),
        .hwif_out_dac_frame_frame_swmod(dac_frame_swmod),
        .hwif_in_dac_rdata_frame(dac_rdata),
        .hwif_in_dac_rdata_refused(dac_refused),
        .hwif_in_op_count_count(op_count),
        .hwif_in_pulse_count_count(pulse_count),
        .hwif_in_out_words_count(out_words),
        .hwif_out_settle_cycles_cycles(settle_cycles),
        .hwif_in_sat_count_count(sat_count),
        .hwif_out_guard_cycles_cycles(guard_cycles),
        /* verilator lint_off PINCONNECTEMPTY */
        .hwif_out_ratings_lock_locked(),  // the lock acts inside the block (swwel)
        /* verilator lint_on PINCONNECTEMPTY */
        .hwif_out_dac_limit_v_sl_code(lim_sl),
        .hwif_out_dac_limit_v_bl_code(lim_bl),
        .hwif_out_dac_limit_v_wl_code(lim_wl),
        .hwif_out_dac_limit_v_read_code(lim_read)
    );

    reg irq_q;  // the interrupt pin from a flip-flop (one clock after DONE/ERROR)
    always @(posedge aclk or negedge rst_n) begin
        if (!rst_n) irq_q <= 1'b0;
        else irq_q <= irq_en & (done | error);
    end
    assign irq = irq_q;
    assign sr_srclr_n = 1'b1;  // the shift register is never cleared: every frame is shifted in full

    // ---- peripherals ----
    dac80508_spi #(.HALF(DAC_HALF), .READ_HALF(DAC_READ_HALF)) u_dac (
        .clk(aclk), .rst_n(rst_n), .start(spi_go), .frame(dac_frame), .busy(dac_busy), .rdata(dac_rdata),
        .sclk(dac_sclk), .sync_n(dac_sync_n), .sdin(dac_sdin), .sdo(dac_sdo)
    );

    wire ch_shift, ch_latch, ch_busy;
    wire [31:0] ch_word;
    hc595_chain #(.HALF(SR_HALF)) u_chain (
        .clk(aclk), .rst_n(rst_n), .shift(ch_shift), .latch(ch_latch), .word(ch_word), .busy(ch_busy),
        .ser(sr_ser), .srclk(sr_srclk), .rclk(sr_rclk)
    );

    wire adc_go, adc_busy, rx_cs_n, rx_dclk, rx_dout;
    wire signed [ADC_BITS-1:0] adc_code;
    wire [CW-1:0] adc_col;
    wire [SW-1:0] adc_sel;  // column j is on ADC j % NADC, at its column-mux input j / NADC
    generate
        if (AW == 0) begin : g_one_adc
            assign adc_sel = 1'b0;
            assign col_mux = adc_col;
        end else begin : g_adcs
            assign adc_sel = adc_col[SW-1:0];
            assign col_mux = adc_col[CW-1:AW];
        end
    endgenerate
    assign rx_dout = adc_dout[adc_sel];
    // Every ADC pin leaves through a register (no decode glitch on a chip select); DCLK is delayed by the
    // same clock, so the reader's capture edge comes one clock before the pin's rising edge, still
    // (ADC_HALF - 1) clocks after the falling edge on which DOUT changes (ADS8324 timing diagram).
    reg [NADC-1:0] cs_q;
    reg dclk_q;
    always @(posedge aclk or negedge rst_n) begin
        if (!rst_n) begin
            cs_q <= {NADC{1'b1}};
            dclk_q <= 1'b0;
        end else begin
            cs_q <= ~({{(NADC-1){1'b0}}, ~rx_cs_n} << adc_sel);
            dclk_q <= rx_dclk;
        end
    end
    assign adc_cs_n = cs_q;
    assign adc_dclk = dclk_q;
    ads8324_rx #(.HALF(ADC_HALF), .MIN_CYCLES(ADC_MIN_CYCLES)) u_adc (
        .clk(aclk), .rst_n(rst_n), .start(adc_go), .busy(adc_busy), .code(adc_code), .cs_n(rx_cs_n),
        .dclk(rx_dclk), .dout(rx_dout)
    );

    rram_seq #(.ROWS(ROWS), .COLS(COLS)) u_seq (
        .clk(aclk), .rst_n(rst_n),
        .start(start), .abort_req(abort_req), .clear(clear), .rating_err(dac_go && frame_over), .opcode(opcode),
        .row_start(row_start), .row_count(row_count), .col_start(col_start), .col_count(col_count),
        .pulse_cycles(pulse_cycles), .bits(bits), .batch(batch), .cell_count(cell_count),
        .verify_tol(verify_tol), .max_pulses(max_pulses), .settle_cycles(settle_cycles), .guard_cycles(guard_cycles),
        .tia_gain_reg(tia_gain_reg), .tia_gain(tia_gain),
        .busy(busy), .done(done), .error(error), .err_code(err_code), .start_refused(start_refused),
        .op_count(op_count), .pulse_count(pulse_count), .out_words(out_words), .sat_count(sat_count),
        .ch_shift(ch_shift), .ch_latch(ch_latch), .ch_word(ch_word), .ch_busy(ch_busy), .sr_oe_n(sr_oe_n),
        .col_lo(col_lo), .col_hi(col_hi), .sl_mode(sl_mode), .wl_en(wl_en), .drive_en(drive_en),
        .adc_go(adc_go), .adc_col(adc_col), .adc_busy(adc_busy), .adc_code(adc_code),
        .s_tdata(s_axis_tdata), .s_tvalid(s_axis_tvalid), .s_tlast(s_axis_tlast), .s_tready(s_axis_tready),
        .m_tdata(m_axis_tdata), .m_tvalid(m_axis_tvalid), .m_tlast(m_axis_tlast), .m_tready(m_axis_tready)
    );
endmodule
