/* Integer keys that order floating-point values by the rule of max pooling, for the
   windows taken one at a time (those that cross the input's edges).

   A later tap wins when it is larger, or NaN; ties keep the first. Compared as floats,
   the taps' selects made GCC branch on the data, and a branch is mispredicted about as
   often as a later tap wins. Compared as these keys, with a mask, they stay integer
   selects; the one branch left is taken by NaNs only. The key of a value is its
   magnitude's bits, negated for a negative value (so both zeros get 0, which are
   equal), and FASTCONV_MAX_KEY_NAN for any NaN, above every number. The caller stores
   the key of a NaN it keeps one lower, so that a later NaN still wins. */
#ifndef FASTCONV_MAX_KEY_H
#define FASTCONV_MAX_KEY_H

#include <stdint.h>
#include <string.h>

#define FASTCONV_MAX_KEY_NAN INT64_MAX

/* The magnitude negated where ``sign`` (the bits shifted right to all ones or zeros)
   says negative, by arithmetic: a conditional here also became a branch. */
static inline int64_t fastconv_max_key_f32(float value) {
    int32_t bits;
    int64_t magnitude, sign;
    memcpy(&bits, &value, sizeof bits);
    magnitude = bits & INT32_MAX;
    sign = bits >> 31;
    if (magnitude > 0x7f800000)
        return FASTCONV_MAX_KEY_NAN;
    return (magnitude ^ sign) - sign;
}

static inline int64_t fastconv_max_key_f64(double value) {
    int64_t bits, magnitude, sign;
    memcpy(&bits, &value, sizeof bits);
    magnitude = bits & INT64_MAX;
    sign = bits >> 63;
    if (magnitude > INT64_C(0x7ff0000000000000))
        return FASTCONV_MAX_KEY_NAN;
    return (magnitude ^ sign) - sign;
}

#endif
