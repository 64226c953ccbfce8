"""Elementary functions that LLVM can vectorise.

libm's ``exp``, ``sin`` and ``cos`` are opaque calls, so a loop over them runs one element
at a time (~5 ns for exp, 4-16 ns for sin or cos by the size of x) while arithmetic
vectorises.  These are
plain arithmetic.

``vexp``: x = (128 k + j) ln2/128 + r with |r| <= ln2/256 (ln2/128 split in two, the first
part short enough that its product with the integer is exact), so e^x = 2^k 2^(j/128) e^r:
2^(j/128) comes from a 128-entry table (a double and its relative rounding error, made at
import from 60-digit decimals), e^r - 1 from a degree-5 polynomial (ARM's optimized-routines
coefficients), and 2^k is built from its bit pattern in two factors so that a subnormal result
is rounded once.  The integer comes from the bits of c N/ln2 + 1.5 2^52 (no float-to-int
conversion, which needs AVX-512DQ to vectorise) and the table reads are vector gathers.
Measured against numpy over the whole range it is within 1 ulp (tests/test_vmath.py).  It
did vectorise in its earlier form too (a degree-13 Taylor polynomial, no table), but cost
~46 vector operations per four elements against ~30 now: ~1.5x faster.

``vsin``/``vcos``: one branch-free path for every double, no fallback to libm (a call on
any path would keep the loop from vectorising, and LLVM speculates libm's sin into every
lane).  The argument is reduced by Payne and Hanek's method: for |x| = M 2^E (M the 53-bit
integer significand) only (2^(E+1)/pi) mod 4 matters, since M times a multiple of 4 is a
whole number of turns.  A table built at import holds it for every exponent as 7 pieces of
26 bits (182 bits: enough for the hardest doubles, whose remainder mod pi/2 is ~2^-61);
the pieces times the two halves of M are exact products, summed exactly (whole quarter
turns and fractions apart) or with error-free two-sums.  The remainder r, |r| <= pi/4 as
two doubles, goes into fdlibm's k_sin/k_cos polynomials (musl's form), and the quadrant
picks sin or cos and the sign with selects.  The table reads become vector gathers; the
whole costs ~6.6 ns an element whatever |x| (glibc: 4-6 ns below 1, 9-16 ns up to 1e6,
~90 ns beyond 1e9).

Accuracy: below 1 ulp of the exact value (0.75 ulp measured with mpmath over uniform samples
up to 1e300 and the doubles nearest multiples of pi/2; tests/test_vmath.py).  Invariants:
exact IEEE behaviour at the edges, sin(+-0) = +-0, sin x = x for |x| < 2^-26 (subnormals
included), cos x = 1 for |x| < 2^-27, sin/cos of NaN or +-inf = NaN; the same bits in
vectorised and scalar code (only + - * and selects, no FMA: numba does not contract
without fastmath).

Rules too big for LLVM's inliner are compiled with ``rule(inline=True)``: a call left in
an elementwise loop keeps it from vectorising.
"""
import decimal
import math

import numpy as np
from llvmlite import ir
from numba.core import types
from numba.extending import intrinsic

from .compile import rule

EXP_BITS = 7  # e^x = 2^(k + j/128) e^r: a 128-entry table of 2^(j/128) and |r| <= ln2/256
EXP_N = 1 << EXP_BITS


def _exp_constants():
    """N/ln2; ln2/N as hi + lo with hi of 33 bits (kd * hi is exact for |kd| < 2^20); and the
    table: row j is 2^(j/N) rounded to a double s_j and (2^(j/N) - s_j) / s_j, both from
    60-digit decimals."""
    ctx = decimal.Context(prec=60)
    ln2 = ctx.ln(decimal.Decimal(2))
    step = ctx.divide(ln2, EXP_N)
    hi = math.ldexp(round(math.ldexp(float(step), 40)), -40)  # 2^-8 <= ln2/N < 2^-7: 33 bits
    lo = float(ctx.subtract(step, decimal.Decimal(hi)))
    rows = []
    for j in range(EXP_N):
        exact = ctx.power(decimal.Decimal(2), ctx.divide(decimal.Decimal(j), EXP_N))
        s = float(exact)
        rows.append([s, float(ctx.divide(ctx.subtract(exact, decimal.Decimal(s)), decimal.Decimal(s)))])
    return float(ctx.divide(EXP_N, ln2)), hi, lo, np.array(rows).ravel()


N_OVER_LN2, LN2_N_HI, LN2_N_LO, EXP_TABLE = _exp_constants()
# e^r - 1 ~ r + r^2 (E2 + r E3) + r^4 (E4 + r E5) on |r| <= ln2/256 (ARM's optimized-routines
# exp, abs error 1.6 2^-66)
E2, E3, E4, E5 = map(float.fromhex, ["0x1.ffffffffffdbdp-2", "0x1.555555555543cp-3", "0x1.55555cf172b91p-5",
                                      "0x1.1111167a4d017p-7"])
ROUNDER = 1.5 * 2.0 ** 52  # (t + ROUNDER) - ROUNDER rounds |t| < 2^51 to an integer
ROUNDER_BITS = 0x4338000000000000  # its bit pattern: bits(t + ROUNDER) - ROUNDER_BITS is that integer


@intrinsic
def _float_from_bits(typingctx, bits):
    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.DoubleType())
    return types.float64(types.int64), codegen


@intrinsic
def _bits_of_float(typingctx, x):
    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.IntType(64))
    return types.int64(types.float64), codegen


@rule(inline=True)
def pow2(k):
    """2.0**k for an integer k in [-1022, 1023], from its IEEE bit pattern."""
    return _float_from_bits((k + 1023) << 52)


@rule(inline=True)
def vexp(x):
    """e^x within 1 ulp of numpy's for every double (module docstring)."""
    c = min(max(x, -746.0), 710.0)  # beyond these e^x is 0 or inf anyway
    t = c * N_OVER_LN2 + ROUNDER  # the integer nearest c N/ln2, as float and as bits
    kd = t - ROUNDER
    ki = _bits_of_float(t) - ROUNDER_BITS
    r = (c - kd * LN2_N_HI) - kd * LN2_N_LO
    j = (ki & (EXP_N - 1)) * 2
    s, tail = EXP_TABLE[j], EXP_TABLE[j + 1]
    r2 = r * r
    p = tail + r + r2 * (E2 + r * E3) + r2 * r2 * (E4 + r * E5)
    k = ki >> EXP_BITS
    k1 = k >> 1  # two factors keep each power of two normal, so underflow rounds once
    y = (s + s * p) * pow2(k1) * pow2(k - k1)
    return y if x == x else x


@rule
def vsigmoid(x):
    """1 / (1 + e^-x) without overflow and with one exponential."""
    e = vexp(-abs(x))
    s = 1.0 / (1.0 + e)
    return s if x >= 0.0 else e * s


# --- sine and cosine -------------------------------------------------------------------------
# floor(2/pi * 2^1280); tests/test_vmath.py checks the digits against mpmath
TWO_OVER_PI_1280 = int(
    "a2f9836e4e441529fc2757d1f534ddc0db6295993c439041fe5163abdebbc561b7246e3a424dd2e0"
    "06492eea09d1921cfe1deb1cb129a73ee88235f52ebb4484e99c7026b45f7e413991d639835339f4"
    "9c845f8bbdf9283b1ff897ffde05980fef2f118b5a0a6d1f6d367ecf27cb09b74f463f669e5fea2d"
    "7527bac7ebe5f17b3d0739f78a5292ea6bfb5fb11f8d5d0856033046fc7b6babf0cfbc209af4361d", 16)
SMALL_EXP = 1023 - 27  # biased exponent of 2^-27: smaller arguments never need the table
PIECES, PIECE_BITS = 7, 26


def quarter_turns_table():
    """Row ``e - SMALL_EXP`` holds (2^(E+1)/pi) mod 4 for E = e - 1075 (so that a double
    M 2^E with biased exponent e is M times it in quarter turns, mod a full turn), as
    ``PIECES`` pieces; piece j is the bits of weight 2^(1-26j) down to 2^(-24-26j)."""
    rows = []
    for e in range(SMALL_EXP, 2047):
        # bits of weight 2^1 .. 2^-181; the truncation of 2/pi costs < 2^-128 of them
        window = (TWO_OVER_PI_1280 >> (1280 - 181 - (e - 1075))) & ((1 << 183) - 1)
        rows.append([math.ldexp((window >> (157 - PIECE_BITS * j)) & ((1 << PIECE_BITS) - 1),
                                -(24 + PIECE_BITS * j)) for j in range(PIECES)])
    return np.array(rows).ravel()


QUARTERS = quarter_turns_table()
SPLIT = 2.0 ** 27 + 1.0  # Veltkamp's splitter: 26 + 26 bits
PIO2_HI, PIO2_LO = 1.5707963267948966, 6.123233995736766e-17
PIO2_HH = PIO2_HI * SPLIT - (PIO2_HI * SPLIT - PIO2_HI)
PIO2_HL = PIO2_HI - PIO2_HH
# fdlibm k_sin.c / k_cos.c (musl's form): |error| < 2^-58 on |r| <= pi/4
S1, S2, S3 = -1.66666666666666324348e-01, 8.33333333332248946124e-03, -1.98412698298579493134e-04
S4, S5, S6 = 2.75573137070700676789e-06, -2.50507602534068634195e-08, 1.58969099521155010221e-10
C1, C2, C3 = 4.16666666666666019037e-02, -1.38888888888741095749e-03, 2.48015872894767294178e-05
C4, C5, C6 = -2.75573143513906633035e-07, 2.08757232129817482790e-09, -1.13596475577881948265e-11


@rule(inline=True)
def _whole(t):
    """(n, t - n) for n the integer nearest t (|t| < 2^51): both exact."""
    n = (t + ROUNDER) - ROUNDER
    return n, t - n


@rule(inline=True)
def _two_sum(a, b):
    """(s, e) with s = fl(a + b) and s + e = a + b exactly (Knuth)."""
    s = a + b
    bb = s - a
    return s, (a - (s - bb)) + (b - bb)


@rule(inline=True)
def _reduce(ax):
    """(n, y0, y1): ax = (n + f) pi/2 mod 2 pi with n a whole number (as a float),
    |f| <= 1/2 + 2^-22 and y0 + y1 = f pi/2 to ~2^-117 absolute, for finite ax >= 2^-27."""
    bits = _bits_of_float(ax)
    i = (min(max(bits >> 52, SMALL_EXP), 2046) - SMALL_EXP) * PIECES
    m = (bits & 0xFFFFFFFFFFFFF) | 0x10000000000000
    mh, ml = float(m & ~0x7FFFFFF), float(m & 0x7FFFFFF)  # 26 bits (times 2^27) and 27 bits
    t0, t1, t2, t3 = QUARTERS[i], QUARTERS[i + 1], QUARTERS[i + 2], QUARTERS[i + 3]
    t4, t5, t6 = QUARTERS[i + 4], QUARTERS[i + 5], QUARTERS[i + 6]
    # Every product is exact; mh * t0 is a multiple of 8 and drops out.  The four largest
    # split exactly into whole quarter turns and fractions, whose sum is exact too.
    n0, f0 = _whole(ml * t0)  # < 2^29, multiple of 2^-24
    n1, f1 = _whole(mh * t1)  # < 2^29, multiple of 2^-23
    n2, f2 = _whole(ml * t1)  # < 2^3, multiple of 2^-50
    n3, f3 = _whole(mh * t2)  # < 2^3, multiple of 2^-49
    n4, f = _whole(((f0 + f1) + f2) + f3)
    hi, lo = _two_sum(f, ml * t2)  # the next four are < 2^-23 and < 2^-49: added exactly
    hi, e = _two_sum(hi, mh * t3)
    lo += e
    hi, e = _two_sum(hi, ml * t3)
    lo += e
    hi, e = _two_sum(hi, mh * t4)
    lo += e + (((ml * t4 + mh * t5) + ml * t5) + (mh * t6 + ml * t6))  # < 2^-74: rounding < 2^-126
    s, sl = _two_sum(hi, lo)
    c = s * SPLIT  # (s + sl) pi/2 in two doubles: Dekker's product of s and PIO2_HI
    sh = c - (c - s)
    st = s - sh
    ph = s * PIO2_HI
    pl = (((sh * PIO2_HH - ph) + sh * PIO2_HL) + st * PIO2_HH) + st * PIO2_HL
    pl += s * PIO2_LO + sl * PIO2_HI
    y0 = ph + pl
    return ((n0 + n1) + (n2 + n3)) + n4, y0, pl - (y0 - ph)


@rule(inline=True)
def _sin_or_cos(ax, quarter):
    """sin(ax + quarter pi/2) for finite ax >= 2^-27 and quarter 0 or 1."""
    n, y0, y1 = _reduce(ax)
    z = y0 * y0
    v = z * y0
    r = S2 + z * (S3 + z * (S4 + z * (S5 + z * S6)))
    sin_r = y0 - ((z * (0.5 * y1 - v * r) - y1) - v * S1)
    w = z * z
    r = z * (C1 + z * (C2 + z * C3)) + w * w * (C4 + z * (C5 + z * C6))
    hz = 0.5 * z
    w = 1.0 - hz
    cos_r = w + (((1.0 - w) - hz) + (z * r - y0 * y1))
    q = int(n) + quarter
    t = cos_r if q & 1 else sin_r
    return -t if q & 2 else t


@rule(inline=True)
def vsin(x):
    """sin x to within 1 ulp, for every double (module docstring)."""
    ax = abs(x)
    y = _sin_or_cos(ax, 0)
    y = -y if x < 0.0 else y
    y = x if ax < 2.0 ** -26 else y  # sin x = x there, signed zeros and subnormals included
    return y if x - x == 0.0 else x - x  # NaN for NaN and +-inf


@rule(inline=True)
def vcos(x):
    """cos x to within 1 ulp, for every double (module docstring)."""
    ax = abs(x)
    y = _sin_or_cos(ax, 1)
    y = 1.0 if ax < 2.0 ** -27 else y
    return y if x - x == 0.0 else x - x
