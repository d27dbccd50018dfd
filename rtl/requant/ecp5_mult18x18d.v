// Behavioural simulation model of the Lattice ECP5 sysDSP primitive MULT18X18D, for the
// configurations nnaccel instantiates (rtl/requant/requantizer.py, dsp="ecp5"): our own
// model, for co-simulation only. Synthesis never reads it: Yosys's synth_ecp5 knows
// MULT18X18D as a black box (share/ecp5/cells_bb.v, whose port and parameter names this
// follows) and nextpnr places it in a DSP tile.
//
// Modelled (Lattice TN1267, ECP5 and ECP5-5G sysDSP Usage Guide):
//   P = A * B, 18 x 18 -> 36 bits; A signed when SIGNEDA = 1, else unsigned (B likewise);
//   the input registers (A with SIGNEDA, B with SIGNEDB), the pipeline register and the
//   output register, each present when its REG_*_CLK is "CLK0" and absent ("NONE")
//   otherwise; a present register loads on a rising CLK0 edge when CE0 = 1 and is
//   cleared by RST0 = 1 on a rising edge (RESETMODE "SYNC"), whatever CE0.
// Not modelled, and refused at time 0 when configured: clocks, enables and resets other
// than CLK0/CE0/RST0, RESETMODE "ASYNC", MULT_BYPASS, and the C input, the cascade
// (SOURCEA/SOURCEB, SRIA/SRIB, SROA/SROB) and the ROA/ROB/ROC outputs (not declared here:
// an instance that connects them does not elaborate). GSR is not modelled (no GSR cell).
`default_nettype none

// The primitive's name and full parameter list, the C input and cascade selects it ignores,
// and registers that start at zero (as after configuration) in simulation:
/* verilator lint_off DECLFILENAME */
/* verilator lint_off UNUSEDPARAM */
/* verilator lint_off UNUSEDSIGNAL */
/* verilator lint_off PROCASSINIT */
module MULT18X18D (
    input wire A0, A1, A2, A3, A4, A5, A6, A7, A8, A9, A10, A11, A12, A13, A14, A15, A16, A17,
    input wire B0, B1, B2, B3, B4, B5, B6, B7, B8, B9, B10, B11, B12, B13, B14, B15, B16, B17,
    input wire C0, C1, C2, C3, C4, C5, C6, C7, C8, C9, C10, C11, C12, C13, C14, C15, C16, C17,
    input wire SIGNEDA, SIGNEDB, SOURCEA, SOURCEB,
    input wire CLK0, CE0, RST0,
    output wire P0, P1, P2, P3, P4, P5, P6, P7, P8, P9, P10, P11, P12, P13, P14, P15, P16, P17,
    output wire P18, P19, P20, P21, P22, P23, P24, P25, P26, P27, P28, P29, P30, P31, P32, P33,
    output wire P34, P35
);
    parameter REG_INPUTA_CLK = "NONE";
    parameter REG_INPUTA_CE = "CE0";
    parameter REG_INPUTA_RST = "RST0";
    parameter REG_INPUTB_CLK = "NONE";
    parameter REG_INPUTB_CE = "CE0";
    parameter REG_INPUTB_RST = "RST0";
    parameter REG_INPUTC_CLK = "NONE";
    parameter REG_INPUTC_CE = "CE0";
    parameter REG_INPUTC_RST = "RST0";
    parameter REG_PIPELINE_CLK = "NONE";
    parameter REG_PIPELINE_CE = "CE0";
    parameter REG_PIPELINE_RST = "RST0";
    parameter REG_OUTPUT_CLK = "NONE";
    parameter REG_OUTPUT_CE = "CE0";
    parameter REG_OUTPUT_RST = "RST0";
    parameter CLK0_DIV = "ENABLED";
    parameter CLK1_DIV = "ENABLED";
    parameter CLK2_DIV = "ENABLED";
    parameter CLK3_DIV = "ENABLED";
    parameter HIGHSPEED_CLK = "NONE";
    parameter GSR = "ENABLED";
    parameter CAS_MATCH_REG = "FALSE";
    parameter SOURCEB_MODE = "B_SHIFT";
    parameter MULT_BYPASS = "DISABLED";
    parameter RESETMODE = "SYNC";

    localparam IN_A = REG_INPUTA_CLK == "CLK0";
    localparam IN_B = REG_INPUTB_CLK == "CLK0";
    localparam PIPE = REG_PIPELINE_CLK == "CLK0";
    localparam OUT = REG_OUTPUT_CLK == "CLK0";

    initial begin
        if ((REG_INPUTA_CLK != "NONE" && !IN_A) || (REG_INPUTB_CLK != "NONE" && !IN_B)
                || (REG_PIPELINE_CLK != "NONE" && !PIPE) || (REG_OUTPUT_CLK != "NONE" && !OUT)
                || REG_INPUTC_CLK != "NONE"
                || (IN_A && (REG_INPUTA_CE != "CE0" || REG_INPUTA_RST != "RST0"))
                || (IN_B && (REG_INPUTB_CE != "CE0" || REG_INPUTB_RST != "RST0"))
                || (PIPE && (REG_PIPELINE_CE != "CE0" || REG_PIPELINE_RST != "RST0"))
                || (OUT && (REG_OUTPUT_CE != "CE0" || REG_OUTPUT_RST != "RST0"))
                || RESETMODE != "SYNC" || MULT_BYPASS != "DISABLED") begin
            $display("MULT18X18D %m: configuration outside this model (rtl/requant/ecp5_mult18x18d.v)");
            $finish;
        end
    end

    wire [17:0] a = {A17, A16, A15, A14, A13, A12, A11, A10, A9, A8, A7, A6, A5, A4, A3, A2, A1, A0};
    wire [17:0] b = {B17, B16, B15, B14, B13, B12, B11, B10, B9, B8, B7, B6, B5, B4, B3, B2, B1, B0};

    reg [17:0] a_reg = 18'd0, b_reg = 18'd0;
    reg sa_reg = 1'b0, sb_reg = 1'b0;
    always @(posedge CLK0) begin
        if (RST0) begin
            a_reg <= 18'd0;
            sa_reg <= 1'b0;
            b_reg <= 18'd0;
            sb_reg <= 1'b0;
        end else if (CE0) begin
            a_reg <= a;
            sa_reg <= SIGNEDA;
            b_reg <= b;
            sb_reg <= SIGNEDB;
        end
    end
    wire [17:0] a_in = IN_A ? a_reg : a;
    wire [17:0] b_in = IN_B ? b_reg : b;
    wire sa_in = IN_A ? sa_reg : SIGNEDA;
    wire sb_in = IN_B ? sb_reg : SIGNEDB;

    // Both operands extended to 36 bits by their signedness: the low 36 bits of the
    // product of the extensions are the exact product (it fits in 36 bits).
    wire [35:0] a_ext = {{18{sa_in & a_in[17]}}, a_in};
    wire [35:0] b_ext = {{18{sb_in & b_in[17]}}, b_in};
    wire [35:0] product = a_ext * b_ext;

    reg [35:0] pipe_reg = 36'd0, out_reg = 36'd0;
    wire [35:0] pipe_in = PIPE ? pipe_reg : product;
    always @(posedge CLK0) begin
        if (RST0) begin
            pipe_reg <= 36'd0;
            out_reg <= 36'd0;
        end else if (CE0) begin
            pipe_reg <= product;
            out_reg <= pipe_in;
        end
    end
    wire [35:0] p = OUT ? out_reg : pipe_in;

    assign {P35, P34, P33, P32, P31, P30, P29, P28, P27, P26, P25, P24, P23, P22, P21, P20, P19, P18,
            P17, P16, P15, P14, P13, P12, P11, P10, P9, P8, P7, P6, P5, P4, P3, P2, P1, P0} = p;
endmodule
/* verilator lint_on PROCASSINIT */
/* verilator lint_on UNUSEDSIGNAL */
/* verilator lint_on UNUSEDPARAM */
/* verilator lint_on DECLFILENAME */

`default_nettype wire
