/* fft.h - a small radix-2 complex FFT (private to the galaxy simulator). */
#ifndef DS_ASTRO_FFT_H
#define DS_ASTRO_FFT_H

/* Twiddles for length n (a power of two): 2 * (n / 2) doubles, cos and sin of -2 pi j / n
 * interleaved. */
void dsi_fft_twiddles(int n, double *tw);
/* In-place FFT of n complex values z (re, im interleaved). inverse: the sign of the
 * exponent is +, and nothing is divided by n. */
void dsi_fft(double *z, int n, int inverse, const double *tw);
/* 2-D FFT of an n x n complex array (row-major, interleaved), rows then columns; buf holds
 * 2 n doubles. */
void dsi_fft2(double *z, int n, int inverse, const double *tw, double *buf);

#endif
