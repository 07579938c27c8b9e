/*
 * MD5 of four independent byte streams at once, in WebAssembly SIMD: lane i of each 128-bit
 * vector holds stream i's state word. MD5 cannot be vectorised within one stream (each step needs
 * the one before), but the parts of a multipart object are independent streams, and four of them
 * hashed side by side cost about what one costs alone: ~1.9 GiB/s here against ~0.7 GiB/s for
 * `node:crypto`'s MD5 (BENCHMARKS.md, "Download, verified"). The steps and constants are RFC 1321's.
 *
 * Built into src/integrity/md5x4-wasm.ts by scripts/build-md5x4.sh (clang and wasm-ld); the
 * module imports its memory and exports md5x4 only. src/integrity/hash-workers.ts pads and
 * finishes each stream; test/unit/hash-workers.test.ts checks the digests against node:crypto.
 */
#include <wasm_simd128.h>
#include <stdint.h>
typedef v128_t V;
#define ROTL(x,s) wasm_v128_or(wasm_i32x4_shl((x),(s)), wasm_u32x4_shr((x),32-(s)))
#define F(b,c,d) wasm_v128_bitselect((c),(d),(b))
#define G(b,c,d) wasm_v128_bitselect((b),(c),(d))
#define H(b,c,d) wasm_v128_xor(wasm_v128_xor((b),(c)),(d))
#define I(b,c,d) wasm_v128_xor((c), wasm_v128_or((b), wasm_v128_not(d)))
#define STEP(f,a,b,c,d,m,k,s) a = wasm_i32x4_add(b, ROTL(wasm_i32x4_add(wasm_i32x4_add(a, f(b,c,d)), wasm_i32x4_add(m, wasm_i32x4_splat(k))), s))
static inline void transpose(V *o, V r0, V r1, V r2, V r3) {
  V t0 = wasm_i32x4_shuffle(r0, r1, 0, 4, 1, 5);
  V t1 = wasm_i32x4_shuffle(r0, r1, 2, 6, 3, 7);
  V t2 = wasm_i32x4_shuffle(r2, r3, 0, 4, 1, 5);
  V t3 = wasm_i32x4_shuffle(r2, r3, 2, 6, 3, 7);
  o[0] = wasm_i32x4_shuffle(t0, t2, 0, 1, 4, 5);
  o[1] = wasm_i32x4_shuffle(t0, t2, 2, 3, 6, 7);
  o[2] = wasm_i32x4_shuffle(t1, t3, 0, 1, 4, 5);
  o[3] = wasm_i32x4_shuffle(t1, t3, 2, 3, 6, 7);
}
/*
 * Hashes `n` 64-byte blocks of each of the four streams at p0..p3 (little-endian words, as MD5
 * reads them) into `state`: four vectors A, B, C, D, whose lane i is stream i's word. A stream
 * with nothing to hash can point at any readable bytes; its lane's result is then ignored.
 */
__attribute__((export_name("md5x4")))
void md5x4(V *state, const uint8_t *p0, const uint8_t *p1, const uint8_t *p2, const uint8_t *p3, uint32_t n) {
  V a = state[0], b = state[1], c = state[2], d = state[3];
  for (uint32_t blk = 0; blk < n; blk++) {
    V M[16];
    for (int g = 0; g < 4; g++) {
      transpose(&M[4*g], wasm_v128_load(p0 + 16*g), wasm_v128_load(p1 + 16*g), wasm_v128_load(p2 + 16*g), wasm_v128_load(p3 + 16*g));
    }
    p0 += 64; p1 += 64; p2 += 64; p3 += 64;
    V aa = a, bb = b, cc = c, dd = d;
    STEP(F,a,b,c,d,M[0],0xd76aa478,7); STEP(F,d,a,b,c,M[1],0xe8c7b756,12); STEP(F,c,d,a,b,M[2],0x242070db,17); STEP(F,b,c,d,a,M[3],0xc1bdceee,22);
    STEP(F,a,b,c,d,M[4],0xf57c0faf,7); STEP(F,d,a,b,c,M[5],0x4787c62a,12); STEP(F,c,d,a,b,M[6],0xa8304613,17); STEP(F,b,c,d,a,M[7],0xfd469501,22);
    STEP(F,a,b,c,d,M[8],0x698098d8,7); STEP(F,d,a,b,c,M[9],0x8b44f7af,12); STEP(F,c,d,a,b,M[10],0xffff5bb1,17); STEP(F,b,c,d,a,M[11],0x895cd7be,22);
    STEP(F,a,b,c,d,M[12],0x6b901122,7); STEP(F,d,a,b,c,M[13],0xfd987193,12); STEP(F,c,d,a,b,M[14],0xa679438e,17); STEP(F,b,c,d,a,M[15],0x49b40821,22);
    STEP(G,a,b,c,d,M[1],0xf61e2562,5); STEP(G,d,a,b,c,M[6],0xc040b340,9); STEP(G,c,d,a,b,M[11],0x265e5a51,14); STEP(G,b,c,d,a,M[0],0xe9b6c7aa,20);
    STEP(G,a,b,c,d,M[5],0xd62f105d,5); STEP(G,d,a,b,c,M[10],0x02441453,9); STEP(G,c,d,a,b,M[15],0xd8a1e681,14); STEP(G,b,c,d,a,M[4],0xe7d3fbc8,20);
    STEP(G,a,b,c,d,M[9],0x21e1cde6,5); STEP(G,d,a,b,c,M[14],0xc33707d6,9); STEP(G,c,d,a,b,M[3],0xf4d50d87,14); STEP(G,b,c,d,a,M[8],0x455a14ed,20);
    STEP(G,a,b,c,d,M[13],0xa9e3e905,5); STEP(G,d,a,b,c,M[2],0xfcefa3f8,9); STEP(G,c,d,a,b,M[7],0x676f02d9,14); STEP(G,b,c,d,a,M[12],0x8d2a4c8a,20);
    STEP(H,a,b,c,d,M[5],0xfffa3942,4); STEP(H,d,a,b,c,M[8],0x8771f681,11); STEP(H,c,d,a,b,M[11],0x6d9d6122,16); STEP(H,b,c,d,a,M[14],0xfde5380c,23);
    STEP(H,a,b,c,d,M[1],0xa4beea44,4); STEP(H,d,a,b,c,M[4],0x4bdecfa9,11); STEP(H,c,d,a,b,M[7],0xf6bb4b60,16); STEP(H,b,c,d,a,M[10],0xbebfbc70,23);
    STEP(H,a,b,c,d,M[13],0x289b7ec6,4); STEP(H,d,a,b,c,M[0],0xeaa127fa,11); STEP(H,c,d,a,b,M[3],0xd4ef3085,16); STEP(H,b,c,d,a,M[6],0x04881d05,23);
    STEP(H,a,b,c,d,M[9],0xd9d4d039,4); STEP(H,d,a,b,c,M[12],0xe6db99e5,11); STEP(H,c,d,a,b,M[15],0x1fa27cf8,16); STEP(H,b,c,d,a,M[2],0xc4ac5665,23);
    STEP(I,a,b,c,d,M[0],0xf4292244,6); STEP(I,d,a,b,c,M[7],0x432aff97,10); STEP(I,c,d,a,b,M[14],0xab9423a7,15); STEP(I,b,c,d,a,M[5],0xfc93a039,21);
    STEP(I,a,b,c,d,M[12],0x655b59c3,6); STEP(I,d,a,b,c,M[3],0x8f0ccc92,10); STEP(I,c,d,a,b,M[10],0xffeff47d,15); STEP(I,b,c,d,a,M[1],0x85845dd1,21);
    STEP(I,a,b,c,d,M[8],0x6fa87e4f,6); STEP(I,d,a,b,c,M[15],0xfe2ce6e0,10); STEP(I,c,d,a,b,M[6],0xa3014314,15); STEP(I,b,c,d,a,M[13],0x4e0811a1,21);
    STEP(I,a,b,c,d,M[4],0xf7537e82,6); STEP(I,d,a,b,c,M[11],0xbd3af235,10); STEP(I,c,d,a,b,M[2],0x2ad7d2bb,15); STEP(I,b,c,d,a,M[9],0xeb86d391,21);
    a = wasm_i32x4_add(a, aa); b = wasm_i32x4_add(b, bb); c = wasm_i32x4_add(c, cc); d = wasm_i32x4_add(d, dd);
  }
  state[0] = a; state[1] = b; state[2] = c; state[3] = d;
}
