/* rng.c - xoshiro256** seeded by splitmix64; uniform, normal and bounded integers. */
#include "internal.h"

#include <math.h>

static uint64_t splitmix(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

void ds_rng_seed(ds_rng *r, uint64_t seed)
{
    uint64_t x = seed;
    for (int i = 0; i < 4; i++)
        r->s[i] = splitmix(&x);
}

static inline uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

uint64_t ds_rng_next(ds_rng *r)
{
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

double ds_rng_uniform(ds_rng *r)
{
    return (double)(ds_rng_next(r) >> 11) * 0x1.0p-53;
}

/* Box-Muller without caching, so the stream position is a pure function of the calls. */
double ds_rng_normal(ds_rng *r)
{
    double u1 = ds_rng_uniform(r), u2 = ds_rng_uniform(r);
    if (u1 < 1e-300)
        u1 = 1e-300;
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

float dsi_normal_at(uint64_t key, int64_t i)
{
    uint64_t h1 = dsi_mix64(key + (uint64_t)(2 * i) * 0x9e3779b97f4a7c15ULL);
    uint64_t h2 = dsi_mix64(key + (uint64_t)(2 * i + 1) * 0x9e3779b97f4a7c15ULL);
    double u1 = ((double)(h1 >> 11) + 1.0) * 0x1.0p-53;   /* (0, 1]: log(u1) is finite */
    double u2 = (double)(h2 >> 11) * 0x1.0p-53;
    return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}

void ds_rng_fill_normal(ds_rng *r, float *x, int64_t n)
{
    for (int64_t i = 0; i < n; i += 2) {
        double u1 = ds_rng_uniform(r), u2 = ds_rng_uniform(r), s, c;
        if (u1 < 1e-300)
            u1 = 1e-300;
        double rad = sqrt(-2.0 * log(u1));
        sincos(6.283185307179586 * u2, &s, &c);
        x[i] = (float)(rad * c);
        if (i + 1 < n)
            x[i + 1] = (float)(rad * s);
    }
}

/* Lemire's nearly divisionless method, with rejection for exact uniformity. */
uint64_t ds_rng_below(ds_rng *r, uint64_t n)
{
    if (n <= 1)
        return 0;
    uint64_t threshold = -n % n;
    for (;;) {
        uint64_t x = ds_rng_next(r);
        __uint128_t m = (__uint128_t)x * n;
        if ((uint64_t)m >= threshold)
            return (uint64_t)(m >> 64);
    }
}
