/* transform.c - how an ellipticity follows the mirror images and quarter turns that
 * augmentation applies to a galaxy stamp. */
#include "../internal.h"

/* phi is measured counter-clockwise from +x. Mirroring x or y sends phi to pi - phi or
 * -phi: cos 2phi stays, sin 2phi changes sign. A quarter turn adds 90 degrees to phi:
 * both cos 2phi and sin 2phi change sign. */
void ds_ellipticity_transform(void *ctx, int transform, float *e, int64_t n)
{
    (void)ctx;
    bool one_mirror = ((transform & 1) != 0) != ((transform & 2) != 0);
    bool odd_turn = (transform >> 2) & 1;
    for (int64_t i = 0; i + 1 < n; i += 2) {
        if (odd_turn) {
            e[i] = -e[i];
            e[i + 1] = -e[i + 1];
        }
        if (one_mirror)
            e[i + 1] = -e[i + 1];
    }
}
