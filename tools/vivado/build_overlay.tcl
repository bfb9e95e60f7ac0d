# Build the rramctl PL overlay: Zynq PS + AXI DMA + rram_overlay_top (module reference) -> .bit + .hwh.
# Cannot run in CI (needs Vivado); see docs/hdl.md.  Usage (Vivado 2022.1 or later, batch mode):
#   vivado -mode batch -source tools/vivado/build_overlay.tcl -tclargs \
#       [board_part] [part] [out_dir] [rows] [cols] [nadc]
# defaults: tul.com.tw:pynq-z2:part0:1.0  xc7z020clg400-1  build/overlay  512 512 8
# Outputs: <out_dir>/rram_overlay.bit and <out_dir>/rram_overlay.hwh, the names the pynq transport looks for
# (PYNQ loads them as Overlay("rram_overlay.bit"); the .hwh must share the .bit's stem).
# VLNVs the pynq transport binds to: xilinx.com:module_ref:rram_overlay_top:1.0 (cell rram_ctrl_0) and
# xilinx.com:ip:axi_dma:7.1 (cell axi_dma_0).

set board_part [expr {[llength $argv] > 0 ? [lindex $argv 0] : "tul.com.tw:pynq-z2:part0:1.0"}]
set part       [expr {[llength $argv] > 1 ? [lindex $argv 1] : "xc7z020clg400-1"}]
set out_dir    [expr {[llength $argv] > 2 ? [lindex $argv 2] : "build/overlay"}]
set rows       [expr {[llength $argv] > 3 ? [lindex $argv 3] : 512}]
set cols       [expr {[llength $argv] > 4 ? [lindex $argv 4] : 512}]
set nadc       [expr {[llength $argv] > 5 ? [lindex $argv 5] : 8}]

set here [file dirname [file normalize [info script]]]
set rtl  [file normalize "$here/../../hdl/rtl"]
set gen  [file normalize "$here/../../hdl/generated"]
set proj rramctl

create_project $proj "$out_dir/vivado" -part $part -force
if {[catch {set_property board_part $board_part [current_project]} err]} {
    puts "WARNING: board part $board_part not installed ($err); continuing with part $part only"
}
add_files -norecurse [concat [glob $rtl/*.v] [list $gen/rram_ctrl_regs.sv]]
set_property file_type SystemVerilog [get_files rram_ctrl_regs.sv]
add_files -norecurse [glob $gen/*.vh]
set_property include_dirs [list $gen] [current_fileset]
update_compile_order -fileset sources_1

create_bd_design $proj
# Zynq PS: one 100 MHz fabric clock, M_AXI_GP0 for registers, S_AXI_HP0 for the DMA, PL-PS interrupt.
set ps [create_bd_cell -type ip -vlnv xilinx.com:ip:processing_system7:5.5 processing_system7_0]
apply_bd_automation -rule xilinx.com:bd_rule:processing_system7 -config {make_external "FIXED_IO, DDR" apply_board_preset "1"} $ps
set_property -dict [list CONFIG.PCW_FPGA0_PERIPHERAL_FREQMHZ {100} CONFIG.PCW_USE_S_AXI_HP0 {1} \
    CONFIG.PCW_USE_FABRIC_INTERRUPT {1} CONFIG.PCW_IRQ_F2P_INTR {1}] $ps

# AXI DMA: simple mode, 32-bit streams, 26-bit length register (64 MiB transfers).
set dma [create_bd_cell -type ip -vlnv xilinx.com:ip:axi_dma:7.1 axi_dma_0]
set_property -dict [list CONFIG.c_include_sg {0} CONFIG.c_sg_length_width {26} \
    CONFIG.c_m_axis_mm2s_tdata_width {32} CONFIG.c_s_axis_s2mm_tdata_width {32} \
    CONFIG.c_mm2s_burst_size {64} CONFIG.c_s2mm_burst_size {64}] $dma

# The overlay as a module reference -> VLNV xilinx.com:module_ref:rram_overlay_top:1.0
set ctrl [create_bd_cell -type module -reference rram_overlay_top rram_ctrl_0]
set_property -dict [list CONFIG.ROWS $rows CONFIG.COLS $cols CONFIG.NADC $nadc] $ctrl

connect_bd_intf_net [get_bd_intf_pins axi_dma_0/M_AXIS_MM2S] [get_bd_intf_pins rram_ctrl_0/s_axis]
connect_bd_intf_net [get_bd_intf_pins rram_ctrl_0/m_axis] [get_bd_intf_pins axi_dma_0/S_AXIS_S2MM]
apply_bd_automation -rule xilinx.com:bd_rule:axi4 -config {Master "/processing_system7_0/M_AXI_GP0" Clk "Auto"} \
    [get_bd_intf_pins rram_ctrl_0/s_axil]
apply_bd_automation -rule xilinx.com:bd_rule:axi4 -config {Master "/processing_system7_0/M_AXI_GP0" Clk "Auto"} \
    [get_bd_intf_pins axi_dma_0/S_AXI_LITE]
apply_bd_automation -rule xilinx.com:bd_rule:axi4 -config {Slave "/processing_system7_0/S_AXI_HP0" Clk "Auto"} \
    [get_bd_intf_pins axi_dma_0/M_AXI_MM2S]
apply_bd_automation -rule xilinx.com:bd_rule:axi4 -config {Slave "/processing_system7_0/S_AXI_HP0" Clk "Auto"} \
    [get_bd_intf_pins axi_dma_0/M_AXI_S2MM]
connect_bd_net [get_bd_pins processing_system7_0/FCLK_CLK0] [get_bd_pins rram_ctrl_0/aclk]

# Interrupts: the overlay's level irq and the two DMA channel interrupts, through an AXI interrupt controller
# to IRQ_F2P[0]: PYNQ finds interrupt pins only by walking from an axi_intc (PYNQ docs, "Interrupts"; pynq's
# metadata interrupt views), so without it the IP has no `irq` attribute and the transport polls.
set cc [create_bd_cell -type ip -vlnv xilinx.com:ip:xlconcat:2.1 xlconcat_0]
set_property CONFIG.NUM_PORTS {3} $cc
connect_bd_net [get_bd_pins rram_ctrl_0/irq] [get_bd_pins xlconcat_0/In0]
connect_bd_net [get_bd_pins axi_dma_0/mm2s_introut] [get_bd_pins xlconcat_0/In1]
connect_bd_net [get_bd_pins axi_dma_0/s2mm_introut] [get_bd_pins xlconcat_0/In2]
set intc [create_bd_cell -type ip -vlnv xilinx.com:ip:axi_intc:4.1 axi_intc_0]
set_property CONFIG.C_IRQ_CONNECTION {1} $intc
apply_bd_automation -rule xilinx.com:bd_rule:axi4 -config {Master "/processing_system7_0/M_AXI_GP0" Clk "Auto"} \
    [get_bd_intf_pins axi_intc_0/s_axi]
connect_bd_net [get_bd_pins xlconcat_0/dout] [get_bd_pins axi_intc_0/intr]
connect_bd_net [get_bd_pins axi_intc_0/irq] [get_bd_pins processing_system7_0/IRQ_F2P]

# Board pins: every non-bus port of the overlay becomes an external port (constraints: docs/hdl.md).
foreach pin {dac_sclk dac_sync_n dac_sdin dac_sdo sr_ser sr_srclk sr_rclk sr_srclr_n sr_oe_n col_lo col_hi
             sl_mode wl_en drive_en col_mux tia_gain adc_cs_n adc_dclk adc_dout} {
    make_bd_pins_external [get_bd_pins rram_ctrl_0/$pin]
}
if {[file exists "$here/rramctl_pins.xdc"]} {
    add_files -fileset constrs_1 -norecurse "$here/rramctl_pins.xdc"
} else {
    puts "WARNING: no $here/rramctl_pins.xdc: write the PACKAGE_PIN/IOSTANDARD of your board (docs/hdl.md)"
}

assign_bd_address
validate_bd_design
save_bd_design
make_wrapper -files [get_files $proj.bd] -top
add_files -norecurse [glob "$out_dir/vivado/$proj.gen/sources_1/bd/$proj/hdl/${proj}_wrapper.v"]
set_property top ${proj}_wrapper [current_fileset]

launch_runs impl_1 -to_step write_bitstream -jobs 4
wait_on_run impl_1
if {[get_property PROGRESS [get_runs impl_1]] != "100%"} { error "implementation failed" }

file mkdir $out_dir
set out_name rram_overlay  ;# pynq_transport.BITFILE_NAME
file copy -force [glob "$out_dir/vivado/$proj.runs/impl_1/*.bit"] "$out_dir/$out_name.bit"
file copy -force [glob "$out_dir/vivado/$proj.gen/sources_1/bd/$proj/hw_handoff/$proj.hwh"] "$out_dir/$out_name.hwh"
puts "wrote $out_dir/$out_name.bit and $out_dir/$out_name.hwh"
