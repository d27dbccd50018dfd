// Plain Verilator C++ harness for the requantizer: the speed limit that the
// cocotb co-simulation is measured against. It reads the same binary vector file
// ($fread layout) the cocotb harness uses, drives the bare design one vector per cycle,
// writes the outputs as hex and prints its timings as one JSON line.
// (Verilator escapes "__" in port names as "___05F".)
// Usage: requant_bench IN.bin OUT.hex ZERO_POINT ACT_MIN ACT_MAX
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "Vrequant.h"
#include "verilated.h"

static double now() {
    return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

int main(int argc, char** argv) {
    if (argc != 6) {
        std::fprintf(stderr, "usage: %s IN.bin OUT.hex ZERO_POINT ACT_MIN ACT_MAX\n", argv[0]);
        return 2;
    }
    const double t0 = now();
    FILE* in = std::fopen(argv[1], "rb");
    if (!in) { std::perror(argv[1]); return 2; }
    std::vector<uint32_t> words;  // 3 x 32-bit words per 70-bit vector
    unsigned char rec[9];  // one vector: 9 bytes, big-endian (as $fread reads them)
    while (std::fread(rec, 1, sizeof rec, in) == sizeof rec) {
        uint32_t w[3] = {0, 0, 0};
        for (int b = 0; b < 9; ++b) {
            const int bit = 8 * (8 - b);
            w[bit / 32] |= (uint32_t)rec[b] << (bit % 32);
        }
        words.insert(words.end(), w, w + 3);
    }
    std::fclose(in);
    const size_t n = words.size() / 3;
    std::vector<uint8_t> out;
    out.reserve(n);
    const double t1 = now();

    VerilatedContext ctx;
    Vrequant top{&ctx};
    top.zero_point = (uint8_t)std::atoi(argv[3]);
    top.act_min = (uint8_t)std::atoi(argv[4]);
    top.act_max = (uint8_t)std::atoi(argv[5]);
    top.o___05Fready = 1;
    top.rst = 1;
    for (int k = 0; k < 2; ++k) { top.clk = 0; top.eval(); top.clk = 1; top.eval(); }
    top.rst = 0;
    uint64_t cycles = 0;
    size_t next = 0;
    while (out.size() < n) {
        top.clk = 0;
        top.i___05Fvalid = next < n;
        if (next < n) {
            top.i___05Fpayload[0] = words[3 * next];
            top.i___05Fpayload[1] = words[3 * next + 1];
            top.i___05Fpayload[2] = words[3 * next + 2];
        }
        const bool take = top.i___05Fvalid && top.i___05Fready;
        top.eval();
        top.clk = 1;
        top.eval();
        ++cycles;
        if (take) ++next;
        if (top.o___05Fvalid) out.push_back(top.o___05Fpayload);
    }
    top.final();
    const double t2 = now();

    FILE* of = std::fopen(argv[2], "w");
    if (!of) { std::perror(argv[2]); return 2; }
    for (uint8_t v : out) std::fprintf(of, "%02x\n", v);
    std::fclose(of);
    const double t3 = now();
    std::printf("{\"vectors\": %zu, \"cycles\": %llu, \"read_s\": %.6f, \"sim_s\": %.6f, \"write_s\": %.6f, \"total_s\": %.6f}\n",
                n, (unsigned long long)cycles, t1 - t0, t2 - t1, t3 - t2, t3 - t0);
    return 0;
}
