// A baseline JPEG decoder fused with torchvision's crop, resize and normalization, for wasm32.
//
// It decodes only the window of an image that a crop needs (the rows down to the window's bottom,
// and the 8×8 blocks that overlap its columns: entropy decoding still reads every block above and
// beside it), then resizes that window with Pillow's bilinear filter and writes it normalized as
// float32, mirrored if asked. Every step computes what libjpeg-turbo (and so PIL, and sharp's
// libvips) computes, to the bit: the "islow" integer IDCT, "fancy" triangle upsampling of 4:2:0
// and 4:2:2 chroma, the integer YCbCr→RGB tables, then Pillow's 22-bit fixed-point resampling.
//
// What it does not decode (progressive or arithmetic coding, 12-bit samples, CMYK, Adobe RGB,
// unusual sampling factors) and any stream it finds damaged, it reports with a status code, and
// the caller hands the file to sharp: the result is the same image either way, only slower.
//
// Compiled by scripts/build-wasm.sh. The module owns its memory: `input` hands out the place for
// the file's bytes, and each image's buffers are carved after them (nothing outlives one image).
#include <wasm_simd128.h>

#define EXPORT __attribute__((visibility("default")))

typedef unsigned char u8;
typedef unsigned short u16;
typedef unsigned int u32;
typedef int i32;
typedef short i16;
typedef unsigned long long u64;
typedef float f32;

// Status codes, shared with src/decode/wasm_jpeg.ts.
enum {
  OK = 0,
  UNSUPPORTED = 1,  // a valid file this decoder does not handle
  CORRUPT = 2,      // a damaged stream: sharp reports what is wrong
  NO_MEMORY = 3,
  BAD_REQUEST = 4,  // a window outside the image
};

// ---------------------------------------------------------------------------------------------
// Memory: the file's bytes at the heap's start, then a bump allocator reset for each image.

extern u8 __heap_base;

static u32 arena_top;

static int reserve(u32 end) {
  u32 have = (u32)__builtin_wasm_memory_size(0) * 65536u;
  if (end <= have) return 1;
  u32 pages = (end - have + 65535u) / 65536u;
  return __builtin_wasm_memory_grow(0, pages) != (unsigned long)-1;
}

// Sizes are 64-bit so that a header's dimensions cannot wrap them around to a small buffer.
static void* alloc(u64 size) {
  u32 at = (arena_top + 15u) & ~15u;
  if (size > 0x7fffffffu - at || !reserve(at + (u32)size)) return 0;
  arena_top = at + (u32)size;
  return (void*)at;
}

static u8* input_bytes;
static u32 input_length;

// Room for a file of `length` bytes; the caller writes them there. Returns 0 without memory.
EXPORT u8* input(u32 length) {
  u32 start = ((u32)&__heap_base + 15u) & ~15u;
  // 8 bytes of slack: the bit reader loads 8 bytes at a time near the end.
  if (!reserve(start + length + 8)) return 0;
  input_bytes = (u8*)start;
  input_length = length;
  arena_top = start + length + 8;
  for (u32 i = 0; i < 8; i++) input_bytes[length + i] = 0;
  return input_bytes;
}

// ---------------------------------------------------------------------------------------------
// Headers.

typedef struct {
  u8 fast[512];       // for a 9-bit prefix: the code's length (0: longer than 9 bits)
  u8 fast_symbol[512];
  i16 fast_ac[512];   // AC tables: (value << 8) | (run << 4) | bits, for short code + value
  u32 maxcode[18];    // left-aligned in 16 bits, past the last code of each length
  i32 delta[17];      // symbol index = code + delta[length]
  u8 values[256];
  u8 defined;
} Huffman;

typedef struct {
  int id, h, v, tq;    // component id, sampling factors, quantization table
  int td, ta;          // Huffman tables of the scan
  int rh, rv;          // upsampling ratios: max sampling factor / own
  int width, height;   // downsampled size (libjpeg's downsampled_width/height)
  // The decoded window of this component: `pw`×`ph` samples from (px, py).
  u8* plane;
  int px, py, pw, ph;
  int pred;            // DC predictor
} Component;

static struct {
  int width, height, ncomp;
  int hmax, vmax;
  int mcux, mcuy;      // MCUs per row and per column
  int restart;         // restart interval in MCUs (0: none)
  int adobe, adobe_transform, jfif;
  i32 quant[4][64] __attribute__((aligned(16)));
  u8 quant_defined[4];
  Huffman dc[4], ac[4];
  Component comp[3];
  const u8* scan;      // entropy-coded data of the (single) scan
} jpeg;

static const u8 natural_order[64 + 16] = {
    0,  1,  8,  16, 9,  2,  3,  10, 17, 24, 32, 25, 18, 11, 4,  5,  12, 19, 26, 33,
    40, 48, 41, 34, 27, 20, 13, 6,  7,  14, 21, 28, 35, 42, 49, 56, 57, 50, 43, 36,
    29, 22, 15, 23, 30, 37, 44, 51, 58, 59, 52, 45, 38, 31, 39, 46, 53, 60, 61, 54,
    47, 55, 62, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63};

static int be16(const u8* p) { return (p[0] << 8) | p[1]; }

// Builds the lookup tables of a DHT table (JPEG Annex C), or fails on an impossible one.
static int build_huffman(Huffman* t, const u8* counts, const u8* symbols, int is_ac) {
  u16 codes[256];
  u8 sizes[256];
  int n = 0;
  for (int len = 1; len <= 16; len++) {
    for (int i = 0; i < counts[len - 1]; i++) {
      if (n >= 256) return CORRUPT;
      sizes[n++] = (u8)len;
    }
  }
  u32 code = 0;
  int k = 0;
  for (int len = 1; len <= 16; len++) {
    t->delta[len] = k - (i32)code;
    while (k < n && sizes[k] == len) codes[k++] = (u16)code++;
    if (code - 1 >= (1u << len) && counts[len - 1]) return CORRUPT;  // overfull
    t->maxcode[len] = code << (16 - len);
    code <<= 1;
  }
  t->maxcode[17] = 0xffffffffu;
  for (int i = 0; i < n; i++) t->values[i] = symbols[i];
  for (int i = 0; i < 512; i++) t->fast[i] = 0, t->fast_ac[i] = 0;
  for (int i = 0; i < n; i++) {
    int len = sizes[i];
    if (len > 9) continue;
    int first = codes[i] << (9 - len);
    for (int j = 0; j < (1 << (9 - len)); j++) {
      t->fast[first + j] = (u8)len;
      t->fast_symbol[first + j] = symbols[i];
    }
  }
  if (is_ac) {
    // A code and the value bits after it, both within the 9-bit prefix, decode in one lookup.
    for (int i = 0; i < 512; i++) {
      int len = t->fast[i];
      if (!len) continue;
      int rs = t->fast_symbol[i];
      int run = rs >> 4, size = rs & 15;
      if (!size || len + size > 9) continue;
      int bits = (i << len) & 511;
      int value = bits >> (9 - size);
      if (value < (1 << (size - 1))) value -= (1 << size) - 1;
      if (value >= -128 && value <= 127) {
        t->fast_ac[i] = (i16)((value * 256) + (run * 16) + len + size);
      }
    }
  }
  t->defined = 1;
  return OK;
}

// Reads the markers up to the first scan. Returns OK when the image is one this decoder handles.
static int parse_headers(void) {
  const u8* p = input_bytes;
  const u8* end = input_bytes + input_length;
  jpeg.width = 0;
  jpeg.restart = 0;
  jpeg.adobe = jpeg.jfif = 0;
  for (int i = 0; i < 4; i++) jpeg.dc[i].defined = jpeg.ac[i].defined = jpeg.quant_defined[i] = 0;
  if (end - p < 4 || p[0] != 0xff || p[1] != 0xd8) return UNSUPPORTED;
  p += 2;
  for (;;) {
    if (end - p < 4) return CORRUPT;
    if (p[0] != 0xff) return CORRUPT;
    int marker = p[1];
    if (marker == 0xff) {
      p++;
      continue;
    }
    int length = be16(p + 2);
    const u8* body = p + 4;
    if (length < 2 || end - p < 2 + length) return CORRUPT;
    const u8* next = p + 2 + length;
    switch (marker) {
      case 0xc0:
      case 0xc1: {  // baseline / extended sequential, Huffman
        if (jpeg.width) return UNSUPPORTED;
        if (length < 8 || body[0] != 8) return UNSUPPORTED;
        jpeg.height = be16(body + 1);
        jpeg.width = be16(body + 3);
        jpeg.ncomp = body[5];
        if (!jpeg.height || !jpeg.width) return UNSUPPORTED;  // DNL-sized: rare, let sharp do it
        if (jpeg.ncomp != 1 && jpeg.ncomp != 3) return UNSUPPORTED;
        if (length != 8 + 3 * jpeg.ncomp) return CORRUPT;
        jpeg.hmax = jpeg.vmax = 1;
        for (int c = 0; c < jpeg.ncomp; c++) {
          Component* k = &jpeg.comp[c];
          k->id = body[6 + 3 * c];
          k->h = body[7 + 3 * c] >> 4;
          k->v = body[7 + 3 * c] & 15;
          k->tq = body[8 + 3 * c];
          if (k->h < 1 || k->h > 4 || k->v < 1 || k->v > 4 || k->tq > 3) return CORRUPT;
          if (k->h > jpeg.hmax) jpeg.hmax = k->h;
          if (k->v > jpeg.vmax) jpeg.vmax = k->v;
        }
        break;
      }
      case 0xc2: case 0xc3: case 0xc5: case 0xc6: case 0xc7: case 0xc9: case 0xca:
      case 0xcb: case 0xcd: case 0xce: case 0xcf:
        return UNSUPPORTED;  // progressive, lossless, hierarchical, arithmetic
      case 0xc4: {  // DHT
        const u8* q = body;
        while (q < next) {
          if (next - q < 17) return CORRUPT;
          int tc = q[0] >> 4, th = q[0] & 15;
          if (tc > 1 || th > 3) return CORRUPT;
          int total = 0;
          for (int i = 1; i <= 16; i++) total += q[i];
          if (total > 256 || next - q < 17 + total) return CORRUPT;
          int status = build_huffman(tc ? &jpeg.ac[th] : &jpeg.dc[th], q + 1, q + 17, tc);
          if (status) return status;
          q += 17 + total;
        }
        break;
      }
      case 0xdb: {  // DQT
        const u8* q = body;
        while (q < next) {
          int pq = q[0] >> 4, tq = q[0] & 15;
          if (pq > 1 || tq > 3 || next - q < 1 + 64 * (pq + 1)) return CORRUPT;
          for (int i = 0; i < 64; i++) {
            int value = pq ? be16(q + 1 + 2 * i) : q[1 + i];
            jpeg.quant[tq][natural_order[i]] = value;
          }
          jpeg.quant_defined[tq] = 1;
          q += 1 + 64 * (pq + 1);
        }
        break;
      }
      case 0xdd:  // DRI
        if (length != 4) return CORRUPT;
        jpeg.restart = be16(body);
        break;
      case 0xe0:  // APP0: JFIF
        if (length >= 16 && body[0] == 'J' && body[1] == 'F' && body[2] == 'I' && body[3] == 'F' &&
            body[4] == 0)
          jpeg.jfif = 1;
        break;
      case 0xee:  // APP14: Adobe, whose transform flag says how to read 3 components
        if (length >= 14 && body[0] == 'A' && body[1] == 'd' && body[2] == 'o' && body[3] == 'b' &&
            body[4] == 'e') {
          jpeg.adobe = 1;
          jpeg.adobe_transform = body[11];
        }
        break;
      case 0xda: {  // SOS: the scan; its data follows
        if (!jpeg.width) return CORRUPT;
        int ns = body[0];
        if (length != 6 + 2 * ns) return CORRUPT;
        if (ns != jpeg.ncomp) return UNSUPPORTED;  // one scan per component: rare
        for (int i = 0; i < ns; i++) {
          int id = body[1 + 2 * i];
          Component* k = &jpeg.comp[i];
          if (k->id != id) return UNSUPPORTED;  // scan order other than the frame's
          k->td = body[2 + 2 * i] >> 4;
          k->ta = body[2 + 2 * i] & 15;
          if (k->td > 3 || k->ta > 3) return CORRUPT;
          if (!jpeg.dc[k->td].defined || !jpeg.ac[k->ta].defined || !jpeg.quant_defined[k->tq])
            return CORRUPT;
        }
        const u8* s = body + 1 + 2 * ns;
        if (s[0] != 0 || s[1] != 63 || s[2] != 0) return UNSUPPORTED;  // not sequential
        jpeg.scan = next;
        return OK;
      }
      case 0xd9:
        return CORRUPT;  // no image data
      default:
        if (marker >= 0xd0 && marker <= 0xd7) return CORRUPT;
        break;
    }
    p = next;
  }
}

// What libjpeg would do with the components: plain YCbCr (or gray) with the sampling factors the
// fast path handles. Sets each component's ratios and sizes.
static int check_layout(void) {
  if (jpeg.ncomp == 1) {
    // A lone component is coded one block per MCU whatever its sampling factors say.
    Component* k = &jpeg.comp[0];
    k->h = k->v = k->rh = k->rv = 1;
    jpeg.hmax = jpeg.vmax = 1;
    k->width = jpeg.width;
    k->height = jpeg.height;
  } else {
    // libjpeg's guess of the color space (jdapimin.c default_decompress_parms): JFIF, or Adobe
    // with transform 1, or neither and ids other than 'R','G','B', is YCbCr. (Adobe's other
    // transforms make libjpeg warn: sharp decides about those.)
    int ycc;
    if (jpeg.jfif) ycc = 1;
    else if (jpeg.adobe) ycc = jpeg.adobe_transform == 1;
    else ycc = !(jpeg.comp[0].id == 'R' && jpeg.comp[1].id == 'G' && jpeg.comp[2].id == 'B');
    if (!ycc) return UNSUPPORTED;
    for (int c = 0; c < 3; c++) {
      Component* k = &jpeg.comp[c];
      if (jpeg.hmax % k->h || jpeg.vmax % k->v) return UNSUPPORTED;
      k->rh = jpeg.hmax / k->h;
      k->rv = jpeg.vmax / k->v;
      // Triangle upsampling for 2×1 and 2×2 (the 1×2 case has its own, rarer, filter); libjpeg
      // replicates instead when a component is 2 samples wide or less.
      if (k->rh > 2 || k->rv > 2 || (k->rh == 1 && k->rv == 2)) return UNSUPPORTED;
      k->width = (int)(((long long)jpeg.width * k->h + jpeg.hmax - 1) / jpeg.hmax);
      k->height = (int)(((long long)jpeg.height * k->v + jpeg.vmax - 1) / jpeg.vmax);
      if (k->rh == 2 && k->width <= 2) return UNSUPPORTED;
    }
  }
  int mw = 8 * jpeg.hmax, mh = 8 * jpeg.vmax;
  jpeg.mcux = (jpeg.width + mw - 1) / mw;
  jpeg.mcuy = (jpeg.height + mh - 1) / mh;
  return OK;
}

// ---------------------------------------------------------------------------------------------
// Entropy decoding (JPEG Annex F), with a 64-bit bit buffer filled 8 bytes at a time where the
// data has no 0xFF byte.

static struct {
  const u8* p;
  const u8* end;
  u64 bits;      // left-aligned
  int count;     // valid bits in `bits`
  int padded;    // zero bytes put in after a marker or the end of the data
} br;

static void refill(void) {
  while (br.count <= 56) {
    if (br.end - br.p >= 8) {
      u64 word;
      __builtin_memcpy(&word, br.p, 8);
      u64 inverted = ~word;
      // No 0xFF among the next 8 bytes: take as many whole bytes as fit.
      if (!((inverted - 0x0101010101010101ull) & ~inverted & 0x8080808080808080ull)) {
        int n = (64 - br.count) >> 3;
        u64 be = __builtin_bswap64(word) & (~0ull << (64 - 8 * n));
        br.bits |= be >> br.count;
        br.count += 8 * n;
        br.p += n;
        continue;
      }
    }
    u32 byte = 0;
    if (br.p < br.end && br.p[0] != 0xff) {
      byte = *br.p++;
    } else if (br.p + 1 < br.end && br.p[1] == 0x00) {
      byte = 0xff;
      br.p += 2;
    } else {
      br.padded++;  // a marker (or the end): libjpeg fills with zeros too
    }
    br.bits |= (u64)byte << (56 - br.count);
    br.count += 8;
  }
}

static inline u32 take(int n) {  // 1 <= n <= 16
  u32 value = (u32)(br.bits >> (64 - n));
  br.bits <<= n;
  br.count -= n;
  return value;
}

static inline int extend(u32 value, int size) {
  return value < (1u << (size - 1)) ? (int)value - (1 << size) + 1 : (int)value;
}

static inline int decode_symbol(const Huffman* t) {
  u32 prefix = (u32)(br.bits >> 55);
  int len = t->fast[prefix];
  if (len) {
    br.bits <<= len;
    br.count -= len;
    return t->fast_symbol[prefix];
  }
  u32 top = (u32)(br.bits >> 48);
  int k = 10;
  while (top >= t->maxcode[k]) k++;
  if (k == 17) return -1;
  int index = (int)(top >> (16 - k)) + t->delta[k];
  br.bits <<= k;
  br.count -= k;
  if (index < 0 || index > 255) return -1;
  return t->values[index];
}

// Decodes one block's coefficients into `block` (natural order, all zero on entry). Returns
// 0 for a block with only a DC term, 1 for one with AC terms, -1 on damaged data.
static int decode_block(i16* block, Component* k) {
  if (br.count < 32) refill();
  int size = decode_symbol(&jpeg.dc[k->td]);
  if (size < 0 || size > 11) return -1;
  int diff = 0;
  if (size) {
    if (br.count < 16) refill();
    diff = extend(take(size), size);
  }
  k->pred += diff;
  block[0] = (i16)k->pred;
  const Huffman* ac = &jpeg.ac[k->ta];
  int i = 1, any = 0;
  while (i < 64) {
    if (br.count < 32) refill();
    int fast = ac->fast_ac[br.bits >> 55];
    if (fast) {
      i += (fast >> 4) & 15;
      int bits = fast & 15;
      br.bits <<= bits;
      br.count -= bits;
      block[natural_order[i++]] = (i16)(fast >> 8);
      any = 1;
      continue;
    }
    int rs = decode_symbol(ac);
    if (rs < 0) return -1;
    int run = rs >> 4, s = rs & 15;
    if (!s) {
      if (run != 15) break;  // end of block
      i += 16;
      continue;
    }
    i += run;
    if (br.count < 16) refill();
    block[natural_order[i++]] = (i16)extend(take(s), s);
    any = 1;
  }
  return i > 64 ? -1 : any;
}

// ---------------------------------------------------------------------------------------------
// libjpeg-turbo's jpeg_idct_islow (jidctint.c), four columns or rows per SIMD vector. Its C code
// keeps 64-bit intermediates; for coefficients of any real image they fit in 32 bits.

#define CONST_BITS 13
#define PASS1_BITS 2

static inline v128_t mulc(v128_t a, i32 c) { return wasm_i32x4_mul(a, wasm_i32x4_splat(c)); }

// The 8-point 1-D IDCT over lanes: in[0..7] in, out[0..7] before descaling.
static inline void idct_1d(const v128_t* in, v128_t* out) {
  v128_t z2 = in[2], z3 = in[6];
  v128_t z1 = mulc(wasm_i32x4_add(z2, z3), 4433);
  v128_t tmp2 = wasm_i32x4_add(z1, mulc(z3, -15137));
  v128_t tmp3 = wasm_i32x4_add(z1, mulc(z2, 6270));
  v128_t tmp0 = wasm_i32x4_shl(wasm_i32x4_add(in[0], in[4]), CONST_BITS);
  v128_t tmp1 = wasm_i32x4_shl(wasm_i32x4_sub(in[0], in[4]), CONST_BITS);
  v128_t tmp10 = wasm_i32x4_add(tmp0, tmp3);
  v128_t tmp13 = wasm_i32x4_sub(tmp0, tmp3);
  v128_t tmp11 = wasm_i32x4_add(tmp1, tmp2);
  v128_t tmp12 = wasm_i32x4_sub(tmp1, tmp2);

  tmp0 = in[7];
  tmp1 = in[5];
  tmp2 = in[3];
  tmp3 = in[1];
  z1 = wasm_i32x4_add(tmp0, tmp3);
  z2 = wasm_i32x4_add(tmp1, tmp2);
  z3 = wasm_i32x4_add(tmp0, tmp2);
  v128_t z4 = wasm_i32x4_add(tmp1, tmp3);
  v128_t z5 = mulc(wasm_i32x4_add(z3, z4), 9633);
  tmp0 = mulc(tmp0, 2446);
  tmp1 = mulc(tmp1, 16819);
  tmp2 = mulc(tmp2, 25172);
  tmp3 = mulc(tmp3, 12299);
  z1 = mulc(z1, -7373);
  z2 = mulc(z2, -20995);
  z3 = wasm_i32x4_add(mulc(z3, -16069), z5);
  z4 = wasm_i32x4_add(mulc(z4, -3196), z5);
  tmp0 = wasm_i32x4_add(tmp0, wasm_i32x4_add(z1, z3));
  tmp1 = wasm_i32x4_add(tmp1, wasm_i32x4_add(z2, z4));
  tmp2 = wasm_i32x4_add(tmp2, wasm_i32x4_add(z2, z3));
  tmp3 = wasm_i32x4_add(tmp3, wasm_i32x4_add(z1, z4));

  out[0] = wasm_i32x4_add(tmp10, tmp3);
  out[7] = wasm_i32x4_sub(tmp10, tmp3);
  out[1] = wasm_i32x4_add(tmp11, tmp2);
  out[6] = wasm_i32x4_sub(tmp11, tmp2);
  out[2] = wasm_i32x4_add(tmp12, tmp1);
  out[5] = wasm_i32x4_sub(tmp12, tmp1);
  out[3] = wasm_i32x4_add(tmp13, tmp0);
  out[4] = wasm_i32x4_sub(tmp13, tmp0);
}

static inline v128_t descale(v128_t x, int n) {
  return wasm_i32x4_shr(wasm_i32x4_add(x, wasm_i32x4_splat(1 << (n - 1))), n);
}

// Transposes the 4×4 block of lanes a[0..3] in place.
static inline void transpose4(v128_t* a0, v128_t* a1, v128_t* a2, v128_t* a3) {
  v128_t t0 = wasm_i32x4_shuffle(*a0, *a1, 0, 4, 1, 5);
  v128_t t1 = wasm_i32x4_shuffle(*a0, *a1, 2, 6, 3, 7);
  v128_t t2 = wasm_i32x4_shuffle(*a2, *a3, 0, 4, 1, 5);
  v128_t t3 = wasm_i32x4_shuffle(*a2, *a3, 2, 6, 3, 7);
  *a0 = wasm_i64x2_shuffle(t0, t2, 0, 2);
  *a1 = wasm_i64x2_shuffle(t0, t2, 1, 3);
  *a2 = wasm_i64x2_shuffle(t1, t3, 0, 2);
  *a3 = wasm_i64x2_shuffle(t1, t3, 1, 3);
}

// Inverse-transforms `block` (quantized, natural order) with `quant` into 8×8 samples at `out`,
// rows `stride` bytes apart.
static void idct_islow(const i16* block, const i32* quant, u8* out, int stride) {
  // Pass 1, columns: lanes are 4 columns; w[h][r] holds row r of columns 4h..4h+3.
  v128_t w[2][8];
  for (int h = 0; h < 2; h++) {
    v128_t in[8];
    for (int r = 0; r < 8; r++) {
      in[r] = wasm_i32x4_mul(wasm_i32x4_load16x4(block + 8 * r + 4 * h),
                             wasm_v128_load(quant + 8 * r + 4 * h));
    }
    idct_1d(in, w[h]);
    for (int r = 0; r < 8; r++) w[h][r] = descale(w[h][r], CONST_BITS - PASS1_BITS);
  }
  // Transpose so lanes are rows: t[g][j] holds column j of rows 4g..4g+3.
  v128_t t[2][8];
  for (int g = 0; g < 2; g++) {
    for (int h = 0; h < 2; h++) {
      v128_t a0 = w[h][4 * g], a1 = w[h][4 * g + 1], a2 = w[h][4 * g + 2], a3 = w[h][4 * g + 3];
      transpose4(&a0, &a1, &a2, &a3);
      t[g][4 * h] = a0;
      t[g][4 * h + 1] = a1;
      t[g][4 * h + 2] = a2;
      t[g][4 * h + 3] = a3;
    }
  }
  // Pass 2, rows; then back to rows of columns, level-shifted and saturated to 0..255 (the
  // range-limit table's result for every value a real image produces).
  const v128_t center = wasm_i32x4_splat(128);
  for (int g = 0; g < 2; g++) {
    v128_t o[8];
    idct_1d(t[g], o);
    for (int j = 0; j < 8; j++) {
      o[j] = wasm_i32x4_add(descale(o[j], CONST_BITS + PASS1_BITS + 3), center);
    }
    transpose4(&o[0], &o[1], &o[2], &o[3]);
    transpose4(&o[4], &o[5], &o[6], &o[7]);
    for (int r = 0; r < 4; r++) {
      v128_t s16 = wasm_i16x8_narrow_i32x4(o[r], o[4 + r]);
      v128_t s8 = wasm_u8x16_narrow_i16x8(s16, s16);
      wasm_v128_store64_lane(out + (4 * g + r) * stride, s8, 0);
    }
  }
}

// A block with only its DC term: the same value everywhere, as islow's shortcuts compute it.
static void idct_dc(const i16* block, const i32* quant, u8* out, int stride) {
  int v = (block[0] * quant[0] * (1 << PASS1_BITS) + 16) >> 5;
  v += 128;
  v = v < 0 ? 0 : v > 255 ? 255 : v;
  v128_t fill = wasm_i8x16_splat((signed char)v);
  for (int r = 0; r < 8; r++) wasm_v128_store64_lane(out + r * stride, fill, 0);
}

// ---------------------------------------------------------------------------------------------
// Decoding a window.

// Decodes the samples of every component around the pixels [x0, x1) × [y0, y1): the MCUs that
// hold them and one sample more on each side (the upsampling filter's reach). The entropy-coded
// data is read to its end whatever the window, so that damage anywhere in it is found (and the
// file reported by sharp, as libjpeg reports it) and whether a file decodes never depends on the
// crop; only the window's blocks go through the IDCT.
static int decode_window(int x0, int y0, int x1, int y1) {
  int mw = 8 * jpeg.hmax, mh = 8 * jpeg.vmax;
  int mx0 = (x0 >= 2 ? x0 - 2 : 0) / mw;
  int my0 = (y0 >= 2 ? y0 - 2 : 0) / mh;
  int mx1 = (x1 + 2 + mw - 1) / mw;
  int my1 = (y1 + 2 + mh - 1) / mh;
  if (mx1 > jpeg.mcux) mx1 = jpeg.mcux;
  if (my1 > jpeg.mcuy) my1 = jpeg.mcuy;
  for (int c = 0; c < jpeg.ncomp; c++) {
    Component* k = &jpeg.comp[c];
    k->px = mx0 * k->h * 8;
    k->py = my0 * k->v * 8;
    k->pw = (mx1 - mx0) * k->h * 8;
    k->ph = (my1 - my0) * k->v * 8;
    k->plane = alloc((u64)k->pw * k->ph + 16);  // + 16: rows are read 8 or 16 bytes at a time
    if (!k->plane) return NO_MEMORY;
    k->pred = 0;
  }
  i16* block = alloc(64 * sizeof(i16));
  if (!block) return NO_MEMORY;
  for (int i = 0; i < 64; i++) block[i] = 0;

  br.p = jpeg.scan;
  br.end = input_bytes + input_length;
  br.bits = 0;
  br.count = 0;
  br.padded = 0;
  int left = jpeg.restart;
  for (int my = 0; my < jpeg.mcuy; my++) {
    int rows = my >= my0 && my < my1;
    for (int mx = 0; mx < jpeg.mcux; mx++) {
      if (jpeg.restart) {
        if (!left) {
          // Restart marker: byte-align, expect RSTn, reset the predictors.
          if (br.padded * 8 > br.count) return CORRUPT;
          const u8* p = br.p;
          while (p < br.end && p[0] == 0xff && p + 1 < br.end && p[1] == 0xff) p++;
          if (br.end - p < 2 || p[0] != 0xff || (p[1] & 0xf8) != 0xd0) return CORRUPT;
          br.p = p + 2;
          br.bits = 0;
          br.count = 0;
          br.padded = 0;
          for (int c = 0; c < jpeg.ncomp; c++) jpeg.comp[c].pred = 0;
          left = jpeg.restart;
        }
        left--;
      }
      // More than 8 bytes of the zeros put in after the data's end consumed: the data stopped
      // short (this also ends at once a header that claims far more pixels than the file holds).
      if (br.padded > 16) return CORRUPT;
      int keep = rows && mx >= mx0 && mx < mx1;
      for (int c = 0; c < jpeg.ncomp; c++) {
        Component* k = &jpeg.comp[c];
        const i32* quant = jpeg.quant[k->tq];
        for (int by = 0; by < k->v; by++) {
          for (int bx = 0; bx < k->h; bx++) {
            int ac = decode_block(block, k);
            if (ac < 0) return CORRUPT;
            if (keep) {
              int x = (mx - mx0) * k->h * 8 + bx * 8;
              int y = (my - my0) * k->v * 8 + by * 8;
              u8* out = k->plane + y * k->pw + x;
              if (ac) idct_islow(block, quant, out, k->pw);
              else idct_dc(block, quant, out, k->pw);
            }
            if (ac) {
              v128_t zero = wasm_i32x4_splat(0);
              for (int i = 0; i < 64; i += 8) wasm_v128_store(block + i, zero);
            } else {
              block[0] = 0;
            }
          }
        }
      }
    }
  }
  // Bits past a marker or the end of the file mean the data stopped short.
  if (br.padded * 8 > br.count) return CORRUPT;
  // So does data that runs to the end of the file without a marker after it (libjpeg's "premature
  // end of JPEG image"); bytes between the data and the marker are let pass, as sharp lets them.
  const u8* p = br.p;
  while (p + 1 < br.end && !(p[0] == 0xff && p[1] != 0x00 && p[1] != 0xff)) p++;
  if (p + 1 >= br.end) return CORRUPT;
  return OK;
}

static inline int clampi(int v, int lo, int hi) { return v < lo ? lo : v > hi ? hi : v; }

// Row `y` of component `k` at full resolution over pixels [x0, x0 + n), into `out` (with a byte
// of room before it and 32 after): libjpeg-turbo's h2v2_fancy_upsample and h2v1_fancy_upsample, or the samples
// themselves. Their triangle filter per output pixel x of sample c = x / 2:
//   2×2: s[c] = 3·row[c] + nearer other row[c];  x even: (3·s[c] + s[c-1] + 8) >> 4,
//                                                   x odd:  (3·s[c] + s[c+1] + 7) >> 4
//   2×1: s[c] = row[c];                          x even: (3·s[c] + s[c-1] + 1) >> 2,
//                                                   x odd:  (3·s[c] + s[c+1] + 2) >> 2
// with the first and last sample of the row (and the first and last row) standing in for their
// missing neighbours, as libjpeg's edge cases compute. `sums` has room for n / 2 + 32 values.
// Returns where the row is: `out`, or the component's own row when it is at full resolution.
static const u8* upsample_row(const Component* k, int y, int x0, int n, u8* out, i16* sums) {
  int cy = y / k->rv;
  const u8* row = k->plane + (cy - k->py) * k->pw - k->px;
  if (k->rh == 1) return row + x0;
  // Samples first..last, plus one copy of each end, at sums[1..]; sums[0] is sample first - 1.
  int first = x0 / 2 - 1, last = (x0 + n - 1) / 2 + 1;
  if (first < 0) first = 0;
  if (last > k->width - 1) last = k->width - 1;
  int count = last - first + 1;
  i16* s = sums + 1;
  int two_rows = k->rv == 2;
  const u8* other = row;
  if (two_rows) {
    int ny = clampi(y & 1 ? cy + 1 : cy - 1, 0, k->height - 1);
    other = k->plane + (ny - k->py) * k->pw - k->px;
  }
  const v128_t three = wasm_i16x8_splat(3);
  for (int c = 0; c < count; c += 8) {
    v128_t a = wasm_u16x8_load8x8(row + first + c);
    v128_t v = two_rows ? wasm_i16x8_add(wasm_i16x8_mul(a, three), wasm_u16x8_load8x8(other + first + c)) : a;
    wasm_v128_store(s + c, v);
  }
  s[-1] = s[0];
  s[count] = s[count - 1];
  // Output pixel x0 + i reads s[c - first - 1 .. c - first + 1] with c = (x0 + i) / 2.
  int shift = two_rows ? 4 : 2;
  v128_t even_bias = wasm_i16x8_splat(two_rows ? 8 : 1);
  v128_t odd_bias = wasm_i16x8_splat(two_rows ? 7 : 2);
  // Pixels from the even one at or before x0, 16 at a time (8 samples).
  int start = x0 & ~1;
  const i16* base = s + (start / 2 - first);
  u8* o = out - (x0 - start);
  for (int i = 0; i < n + (x0 - start); i += 16, base += 8, o += 16) {
    v128_t mid = wasm_i16x8_mul(wasm_v128_load(base), three);
    v128_t even = wasm_i16x8_add(wasm_i16x8_add(mid, wasm_v128_load(base - 1)), even_bias);
    v128_t odd = wasm_i16x8_add(wasm_i16x8_add(mid, wasm_v128_load(base + 1)), odd_bias);
    even = wasm_i16x8_shr(even, shift);
    odd = wasm_i16x8_shr(odd, shift);
    v128_t lo = wasm_i16x8_shuffle(even, odd, 0, 8, 1, 9, 2, 10, 3, 11);
    v128_t hi = wasm_i16x8_shuffle(even, odd, 4, 12, 5, 13, 6, 14, 7, 15);
    wasm_v128_store(o, wasm_u8x16_narrow_i16x8(lo, hi));
  }
  return out;
}
// Four lanes of libjpeg-turbo's YCbCr→RGB (jdcolor.c: ycc_rgb_convert through the tables of
// build_ycc_rgb_table, whose entries are these products rounded the same way).
static inline v128_t chroma(v128_t cb, v128_t cr, i32 kb, i32 kr) {
  v128_t sum = wasm_i32x4_add(wasm_i32x4_mul(cb, wasm_i32x4_splat(kb)),
                              wasm_i32x4_mul(cr, wasm_i32x4_splat(kr)));
  return wasm_i32x4_shr(wasm_i32x4_add(sum, wasm_i32x4_splat(1 << 15)), 16);
}

// Eight lanes of one chroma term (R, G or B minus Y) from Cb and Cr minus 128.
static inline v128_t chroma8(v128_t cb, v128_t cr, i32 kb, i32 kr) {
  v128_t lo = chroma(wasm_i32x4_extend_low_i16x8(cb), wasm_i32x4_extend_low_i16x8(cr), kb, kr);
  v128_t hi = chroma(wasm_i32x4_extend_high_i16x8(cb), wasm_i32x4_extend_high_i16x8(cr), kb, kr);
  return wasm_i16x8_narrow_i32x4(lo, hi);
}

// 16 pixels from R, G, B bytes to RGBX (the 4th byte 0) at `out`.
static inline void store_rgbx(u8* out, v128_t r, v128_t g, v128_t b) {
  v128_t zero = wasm_i32x4_splat(0);
  v128_t rg_lo = wasm_i8x16_shuffle(r, g, 0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
  v128_t rg_hi =
      wasm_i8x16_shuffle(r, g, 8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
  v128_t bx_lo =
      wasm_i8x16_shuffle(b, zero, 0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
  v128_t bx_hi =
      wasm_i8x16_shuffle(b, zero, 8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
  wasm_v128_store(out, wasm_i16x8_shuffle(rg_lo, bx_lo, 0, 8, 1, 9, 2, 10, 3, 11));
  wasm_v128_store(out + 16, wasm_i16x8_shuffle(rg_lo, bx_lo, 4, 12, 5, 13, 6, 14, 7, 15));
  wasm_v128_store(out + 32, wasm_i16x8_shuffle(rg_hi, bx_hi, 0, 8, 1, 9, 2, 10, 3, 11));
  wasm_v128_store(out + 48, wasm_i16x8_shuffle(rg_hi, bx_hi, 4, 12, 5, 13, 6, 14, 7, 15));
}

// 16 pixels of RGB from Y, Cb, Cr bytes, to RGBX at `out`.
static inline void ycc_to_rgbx(const u8* Y, const u8* cb, const u8* cr, u8* out) {
  v128_t y = wasm_v128_load(Y), b = wasm_v128_load(cb), r = wasm_v128_load(cr);
  v128_t center = wasm_i16x8_splat(128);
  v128_t l = wasm_u16x8_extend_low_u8x16(y), h = wasm_u16x8_extend_high_u8x16(y);
  v128_t ul = wasm_i16x8_sub(wasm_u16x8_extend_low_u8x16(b), center);
  v128_t uh = wasm_i16x8_sub(wasm_u16x8_extend_high_u8x16(b), center);
  v128_t vl = wasm_i16x8_sub(wasm_u16x8_extend_low_u8x16(r), center);
  v128_t vh = wasm_i16x8_sub(wasm_u16x8_extend_high_u8x16(r), center);
  // FIX(1.40200), FIX(0.34414) and FIX(0.71414), FIX(1.77200); saturating to 0..255 is the
  // range-limit table.
  v128_t red = wasm_u8x16_narrow_i16x8(wasm_i16x8_add(l, chroma8(ul, vl, 0, 91881)),
                                       wasm_i16x8_add(h, chroma8(uh, vh, 0, 91881)));
  v128_t green = wasm_u8x16_narrow_i16x8(wasm_i16x8_add(l, chroma8(ul, vl, -22554, -46802)),
                                         wasm_i16x8_add(h, chroma8(uh, vh, -22554, -46802)));
  v128_t blue = wasm_u8x16_narrow_i16x8(wasm_i16x8_add(l, chroma8(ul, vl, 116130, 0)),
                                        wasm_i16x8_add(h, chroma8(uh, vh, 116130, 0)));
  store_rgbx(out, red, green, blue);
}

static u8* window_rgbx;  // 4 bytes a pixel, rows 4 × the window's width apart, plus 64 bytes of room

// Decodes the pixels [x, x + w) × [y, y + h) of the image in `input` to RGBX (`window_rgbx`).
static int decode_rgbx(int x, int y, int w, int h) {
  int status = parse_headers();
  if (status) return status;
  status = check_layout();
  if (status) return status;
  if (x < 0 || y < 0 || w < 1 || h < 1 || x + w > jpeg.width || y + h > jpeg.height)
    return BAD_REQUEST;
  status = decode_window(x, y, x + w, y + h);
  if (status) return status;
  window_rgbx = alloc((u64)w * h * 4 + 64);
  u8* rows = alloc(2 * ((u32)w + 64));
  i16* sums = alloc(((u32)w / 2 + 32) * sizeof(i16));
  if (!window_rgbx || !rows || !sums) return NO_MEMORY;
  u8* cb_row = rows + 16;
  u8* cr_row = rows + w + 80;
  const Component* luma = &jpeg.comp[0];
  for (int r = 0; r < h; r++) {
    u8* out = window_rgbx + (u32)r * w * 4;
    const u8* Y = luma->plane + (y + r - luma->py) * luma->pw + (x - luma->px);
    if (jpeg.ncomp == 1) {
      for (int i = 0; i < w; i += 16, Y += 16, out += 64) {
        v128_t l = wasm_v128_load(Y);
        store_rgbx(out, l, l, l);
      }
      continue;
    }
    const u8* cb = upsample_row(&jpeg.comp[1], y + r, x, w, cb_row, sums);
    const u8* cr = upsample_row(&jpeg.comp[2], y + r, x, w, cr_row, sums);
    for (int i = 0; i < w; i += 16) ycc_to_rgbx(Y + i, cb + i, cr + i, out + 4 * i);
  }
  return OK;
}

static u8* window_rgb;

// Decodes the pixels [x, x + w) × [y, y + h) of the image in `input` to RGB, into a buffer that
// `window_pixels` returns. Returns a status code.
EXPORT int decode(int x, int y, int w, int h) {
  int status = decode_rgbx(x, y, w, h);
  if (status) return status;
  window_rgb = alloc((u64)w * h * 3);
  if (!window_rgb) return NO_MEMORY;
  for (u32 i = 0; i < (u32)w * (u32)h; i++) {
    window_rgb[3 * i] = window_rgbx[4 * i];
    window_rgb[3 * i + 1] = window_rgbx[4 * i + 1];
    window_rgb[3 * i + 2] = window_rgbx[4 * i + 2];
  }
  return OK;
}

EXPORT u8* window_pixels(void) { return window_rgb; }

// ---------------------------------------------------------------------------------------------
// Pillow's bilinear resampling (libImaging/Resample.c) and torchvision's normalization.

#define PRECISION_BITS 22

typedef struct {
  i32* first;    // first source index of each output
  i32* count;    // source pixels each output reads
  i32* weights;  // `ksize` per output
  int ksize;
} Coefficients;

// Pillow's precompute_coeffs for its triangle filter, antialiased (the support widens by the
// scale when shrinking), then normalize_coeffs_8bpc: float64 weights rounded to 22-bit fixed point.
static int coefficients(int in, int out, Coefficients* c) {
  double scale = (double)in / out;
  double filter_scale = scale > 1 ? scale : 1;
  double support = filter_scale;
  int ksize = (int)__builtin_ceil(support) * 2 + 1;
  c->ksize = ksize;
  c->first = alloc((u32)out * 4);
  c->count = alloc((u32)out * 4);
  c->weights = alloc((u64)out * ksize * 4);
  double* w = alloc((u32)ksize * 8);
  if (!c->first || !c->count || !c->weights || !w) return NO_MEMORY;
  for (int xx = 0; xx < out; xx++) {
    double center = (xx + 0.5) * scale;
    int xmin = (int)__builtin_trunc(center - support + 0.5);
    if (xmin < 0) xmin = 0;
    int xmax = (int)__builtin_trunc(center + support + 0.5);
    if (xmax > in) xmax = in;
    xmax -= xmin;
    double total = 0;
    for (int x = 0; x < xmax; x++) {
      double t = __builtin_fabs(((double)(x + xmin) - center + 0.5) / filter_scale);
      w[x] = t < 1 ? 1 - t : 0;
      total += w[x];
    }
    for (int x = 0; x < ksize; x++) {
      double k = x >= xmax ? 0 : total == 0 ? w[x] : w[x] / total;
      double fixed = k * (1 << PRECISION_BITS);
      c->weights[xx * ksize + x] = (i32)__builtin_trunc(fixed < 0 ? fixed - 0.5 : fixed + 0.5);
    }
    c->first[xx] = xmin;
    c->count[xx] = xmax;
  }
  return OK;
}

// Sums of 22-bit products, rounded and clipped to 8 bits, four lanes at a time.
static inline v128_t clip8(v128_t sums) {
  v128_t v = wasm_i32x4_shr(sums, PRECISION_BITS);
  v128_t s16 = wasm_i16x8_narrow_i32x4(v, v);
  return wasm_u8x16_narrow_i16x8(s16, s16);
}

static inline v128_t load_rgbx(const u8* p) {
  return wasm_u32x4_extend_low_u16x8(wasm_u16x8_extend_low_u8x16(wasm_v128_load32_zero(p)));
}

static f32 table[3 * 256];
static f32* result;

// The normalization table (3 × 256 floats: channel c, value v at c * 256 + v) to fill in once.
EXPORT f32* normalization(void) { return table; }

// The float32 HWC pixels the last `crop_resize` wrote.
EXPORT f32* output(void) { return result; }

// Writes `rows` rows of `width` pixels (`step` bytes apart: 3 for RGB, 4 for RGBX) through the
// normalization table into `out` (HWC float32), mirrored left to right when `flip` is set.
static void normalize_rows(const u8* in, int in_stride, int step, int width, int rows, int flip,
                           f32* out) {
  for (int r = 0; r < rows; r++) {
    const u8* p = in + r * in_stride;
    f32* o = out + (u32)r * width * 3;
    if (flip) o += (width - 1) * 3;
    int to = flip ? -3 : 3;
    for (int x = 0; x < width; x++, p += step, o += to) {
      o[0] = table[p[0]];
      o[1] = table[256 + p[1]];
      o[2] = table[512 + p[2]];
    }
  }
}

// Sixteen 8-bit lanes times a 22-bit weight, added to four i32x4 sums.
static inline void multiply_add16(v128_t* acc, v128_t bytes, v128_t weight) {
  v128_t lo = wasm_u16x8_extend_low_u8x16(bytes), hi = wasm_u16x8_extend_high_u8x16(bytes);
  acc[0] = wasm_i32x4_add(acc[0], wasm_i32x4_mul(wasm_u32x4_extend_low_u16x8(lo), weight));
  acc[1] = wasm_i32x4_add(acc[1], wasm_i32x4_mul(wasm_u32x4_extend_high_u16x8(lo), weight));
  acc[2] = wasm_i32x4_add(acc[2], wasm_i32x4_mul(wasm_u32x4_extend_low_u16x8(hi), weight));
  acc[3] = wasm_i32x4_add(acc[3], wasm_i32x4_mul(wasm_u32x4_extend_high_u16x8(hi), weight));
}

// The image in `input`, as torchvision would produce it through a crop and a resize: the region
// (sx, sy, sw, sh) of the source, resized with Pillow's bilinear filter to rw×rh, of which the
// window (wx, wy, ww, wh) is kept; normalized, mirrored when `flip` is set, into `output()`.
// Only the source pixels the window reads are decoded. Returns a status code.
EXPORT int crop_resize(int sx, int sy, int sw, int sh, int rw, int rh, int wx, int wy, int ww,
                       int wh, int flip) {
  if (sw < 1 || sh < 1 || rw < 1 || rh < 1 || wx < 0 || wy < 0 || ww < 1 || wh < 1 ||
      wx + ww > rw || wy + wh > rh)
    return BAD_REQUEST;
  int status;
  if (rw == sw && rh == sh) {
    // No resize: the window is a crop of the source.
    status = decode_rgbx(sx + wx, sy + wy, ww, wh);
    if (status) return status;
    result = alloc((u64)ww * wh * 3 * sizeof(f32));
    if (!result) return NO_MEMORY;
    normalize_rows(window_rgbx, ww * 4, 4, ww, wh, flip, result);
    return OK;
  }
  Coefficients hc, vc;
  if ((status = coefficients(sw, rw, &hc)) || (status = coefficients(sh, rh, &vc))) return status;
  // The source columns and rows the window reads.
  int c0 = hc.first[wx], c1 = hc.first[wx + ww - 1] + hc.count[wx + ww - 1];
  int r0 = vc.first[wy], r1 = vc.first[wy + wh - 1] + vc.count[wy + wh - 1];
  status = decode_rgbx(sx + c0, sy + r0, c1 - c0, r1 - r0);
  if (status) return status;
  int in_stride = (c1 - c0) * 4;

  // Horizontal pass over those rows, rounded to 8 bits, to RGB (each pixel stored as 4 bytes, the
  // next pixel overwriting the 4th).
  int rows = r1 - r0;
  int row = ww * 3;
  u8* mid = alloc((u64)rows * row + 16);
  result = alloc((u64)ww * wh * 3 * sizeof(f32));
  u8* line = alloc((u32)row + 16);
  if (!mid || !line || !result) return NO_MEMORY;
  const v128_t half = wasm_i32x4_splat(1 << (PRECISION_BITS - 1));
  for (int y = 0; y < rows; y++) {
    const u8* src = window_rgbx + y * in_stride - c0 * 4;
    u8* o = mid + (u32)y * row;
    for (int xx = wx; xx < wx + ww; xx++, o += 3) {
      const i32* k = hc.weights + xx * hc.ksize;
      const u8* p = src + hc.first[xx] * 4;
      v128_t acc = half;
      for (int j = 0; j < hc.count[xx]; j++, p += 4) {
        acc = wasm_i32x4_add(acc, wasm_i32x4_mul(load_rgbx(p), wasm_i32x4_splat(k[j])));
      }
      wasm_v128_store32_lane(o, clip8(acc), 0);
    }
  }
  // Vertical pass, 16 bytes at a time, then the normalization.
  for (int yy = wy; yy < wy + wh; yy++) {
    const i32* k = vc.weights + yy * vc.ksize;
    const u8* src = mid + (u32)(vc.first[yy] - r0) * row;
    int n = vc.count[yy];
    for (int x = 0; x < row; x += 16) {
      v128_t acc[4] = {half, half, half, half};
      const u8* p = src + x;
      for (int j = 0; j < n; j++, p += row) multiply_add16(acc, wasm_v128_load(p), wasm_i32x4_splat(k[j]));
      for (int q = 0; q < 4; q++) acc[q] = wasm_i32x4_shr(acc[q], PRECISION_BITS);
      v128_t lo = wasm_i16x8_narrow_i32x4(acc[0], acc[1]);
      v128_t hi = wasm_i16x8_narrow_i32x4(acc[2], acc[3]);
      wasm_v128_store(line + x, wasm_u8x16_narrow_i16x8(lo, hi));
    }
    normalize_rows(line, row, 3, ww, 1, flip, result + (u32)(yy - wy) * row);
  }
  return OK;
}
