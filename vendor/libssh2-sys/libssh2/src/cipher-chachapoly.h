/* $OpenBSD: cipher-chachapoly.h,v 1.4 2014/06/24 01:13:21 djm Exp $ */

/*
 * Copyright (c) Damien Miller 2013 <djm@mindrot.org>
 *
 * Permission to use, copy, modify, and distribute this software for any
 * purpose with or without fee is hereby granted, provided that the above
 * copyright notice and this permission notice appear in all copies.
 *
 * THE SOFTWARE IS PROVIDED "AS IS" AND THE AUTHOR DISCLAIMS ALL WARRANTIES
 * WITH REGARD TO THIS SOFTWARE INCLUDING ALL IMPLIED WARRANTIES OF
 * MERCHANTABILITY AND FITNESS. IN NO EVENT SHALL THE AUTHOR BE LIABLE FOR
 * ANY SPECIAL, DIRECT, INDIRECT, OR CONSEQUENTIAL DAMAGES OR ANY DAMAGES
 * WHATSOEVER RESULTING FROM LOSS OF USE, DATA OR PROFITS, WHETHER IN AN
 * ACTION OF CONTRACT, NEGLIGENCE OR OTHER TORTIOUS ACTION, ARISING OUT OF
 * OR IN CONNECTION WITH THE USE OR PERFORMANCE OF THIS SOFTWARE.
 *
 * SPDX-License-Identifier: BSD-2-Clause
 */
#ifndef CHACHA_POLY_AEAD_H
#define CHACHA_POLY_AEAD_H

#include "chacha.h"
#include "poly1305.h"

#define CHACHA_KEYLEN   32 /* Only 256-bit keys used here */

/* dars patch: with OpenSSL (1.1.0 or later, not LibreSSL or wolfSSL) use its
   ChaCha20, as OpenSSH does in cipher-chachapoly-libcrypto.c, and with
   OpenSSL 3 its Poly1305 too (EVP_MAC). Both are vectorised; the portable
   C below is several times slower and dominated the cost of an upload. */
#if defined(LIBSSH2_OPENSSL) && !defined(LIBSSH2_WOLFSSL) && \
    !defined(LIBRESSL_VERSION_NUMBER) && !defined(OPENSSL_IS_BORINGSSL) && \
    !defined(OPENSSL_IS_AWSLC) && OPENSSL_VERSION_NUMBER >= 0x10100000L
#define LIBSSH2_CHACHA_LIBCRYPTO 1
#if OPENSSL_VERSION_NUMBER >= 0x30000000L
#define LIBSSH2_POLY1305_LIBCRYPTO 1
/* EVP_Cipher returns the byte count, or -1 on failure */
#define CHACHA_EVP_FAILED(r) ((r) < 0)
#else
/* EVP_Cipher returns 1, or 0 on failure */
#define CHACHA_EVP_FAILED(r) ((r) <= 0)
#endif
#endif

struct chachapoly_ctx {
#ifdef LIBSSH2_CHACHA_LIBCRYPTO
    EVP_CIPHER_CTX *main_evp, *header_evp;
#ifdef LIBSSH2_POLY1305_LIBCRYPTO
    EVP_MAC_CTX *poly;
#endif
#else
    struct chacha_ctx main_ctx, header_ctx;
#endif
};

int chachapoly_init(struct chachapoly_ctx *ctx, const unsigned char *key,
                    size_t keylen);
int chachapoly_crypt(struct chachapoly_ctx *ctx, libssh2_uint64_t seqnr,
                     unsigned char *dest, const unsigned char *src, size_t len,
                     size_t aadlen, int do_encrypt);
/* dars patch: frees (and wipes) what chachapoly_init set up. */
void chachapoly_free(struct chachapoly_ctx *ctx);
int chachapoly_get_length(struct chachapoly_ctx *ctx,
                          unsigned int *plenp, libssh2_uint64_t seqnr,
                          const unsigned char *cp, size_t len);

#endif /* CHACHA_POLY_AEAD_H */
