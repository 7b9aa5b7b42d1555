/* fft.c - iterative radix-2 complex FFT, 1-D and 2-D, for the PSF convolution. */
#include "fft.h"

#include <math.h>
#include <string.h>

void dsi_fft_twiddles(int n, double *tw)
{
    for (int j = 0; j < n / 2; j++) {
        double a = -2.0 * M_PI * j / n;
        tw[2 * j] = cos(a);
        tw[2 * j + 1] = sin(a);
    }
}

void dsi_fft(double *z, int n, int inverse, const double *tw)
{
    /* bit-reversal permutation */
    for (int i = 1, j = 0; i < n; i++) {
        int bit = n >> 1;
        for (; j & bit; bit >>= 1)
            j ^= bit;
        j |= bit;
        if (i < j) {
            double t0 = z[2 * i], t1 = z[2 * i + 1];
            z[2 * i] = z[2 * j];
            z[2 * i + 1] = z[2 * j + 1];
            z[2 * j] = t0;
            z[2 * j + 1] = t1;
        }
    }
    const double sgn = inverse ? -1.0 : 1.0;
    for (int len = 2; len <= n; len <<= 1) {
        int half = len / 2, step = n / len;
        for (int s = 0; s < n; s += len)
            for (int k = 0; k < half; k++) {
                double wr = tw[2 * k * step], wi = sgn * tw[2 * k * step + 1];
                double *a = z + 2 * (s + k), *b = z + 2 * (s + k + half);
                double br = b[0] * wr - b[1] * wi, bi = b[0] * wi + b[1] * wr;
                b[0] = a[0] - br;
                b[1] = a[1] - bi;
                a[0] += br;
                a[1] += bi;
            }
    }
}

void dsi_fft2(double *z, int n, int inverse, const double *tw, double *buf)
{
    for (int i = 0; i < n; i++)
        dsi_fft(z + (size_t)2 * n * i, n, inverse, tw);
    for (int j = 0; j < n; j++) {
        for (int i = 0; i < n; i++) {
            buf[2 * i] = z[(size_t)2 * (n * i + j)];
            buf[2 * i + 1] = z[(size_t)2 * (n * i + j) + 1];
        }
        dsi_fft(buf, n, inverse, tw);
        for (int i = 0; i < n; i++) {
            z[(size_t)2 * (n * i + j)] = buf[2 * i];
            z[(size_t)2 * (n * i + j) + 1] = buf[2 * i + 1];
        }
    }
}
