//! Masking (RFC 6455 §5.3): XOR with a 4-byte key, in place for received payloads and while
//! copying for sent ones. In 64-byte blocks the compiler emits vector XORs; this is the hot loop
//! of bulk transfers (docs/performance.md).

use bytes::BytesMut;

/// The mask repeated over a 64-byte block.
fn mask_pattern(mask: [u8; 4]) -> [u8; 64] {
    let word = mask_word(mask).to_ne_bytes();
    let mut pattern = [0u8; 64];
    for c in pattern.chunks_exact_mut(8) {
        c.copy_from_slice(&word);
    }
    pattern
}

/// The mask repeated over 8 bytes, as a word.
fn mask_word(mask: [u8; 4]) -> u64 {
    let [a, b, c, d] = mask;
    u64::from_ne_bytes([a, b, c, d, a, b, c, d])
}

/// Append `src` masked, in one pass over the data: 64-byte blocks (vectorised), then 8-byte
/// words, then bytes. Block and word sizes are multiples of 4, so each part starts at mask
/// byte 0.
pub(crate) fn put_masked(dst: &mut BytesMut, src: &[u8], mask: [u8; 4]) {
    dst.reserve(src.len());
    let spare = &mut dst.spare_capacity_mut()[..src.len()];
    let mut out = spare.chunks_exact_mut(64);
    let mut inp = src.chunks_exact(64);
    if src.len() >= 64 {
        let pattern = mask_pattern(mask);
        for (o, i) in (&mut out).zip(&mut inp) {
            for ((o, i), p) in o.iter_mut().zip(i).zip(pattern.iter()) {
                o.write(i ^ p);
            }
        }
    }
    let word = mask_word(mask);
    let mut out = out.into_remainder().chunks_exact_mut(8);
    let mut inp = inp.remainder().chunks_exact(8);
    for (o, i) in (&mut out).zip(&mut inp) {
        let v = u64::from_ne_bytes(i.try_into().expect("8 bytes")) ^ word;
        for (o, b) in o.iter_mut().zip(v.to_ne_bytes()) {
            o.write(b);
        }
    }
    for (k, (o, i)) in out
        .into_remainder()
        .iter_mut()
        .zip(inp.remainder())
        .enumerate()
    {
        o.write(i ^ mask[k & 3]);
    }
    // SAFETY: the loops above wrote all `src.len()` bytes after the current end.
    unsafe { dst.set_len(dst.len() + src.len()) };
}

/// XOR `buf` in place with the mask (the same parts as `put_masked`).
pub(crate) fn apply_mask(buf: &mut [u8], mask: [u8; 4]) {
    let mut blocks = buf.chunks_exact_mut(64);
    if blocks.len() > 0 {
        // The compiler turns this into vector XORs (a word-at-a-time loop over everything was
        // 10 % of the relay's time in server bulk).
        let pattern = mask_pattern(mask);
        for block in &mut blocks {
            for (b, p) in block.iter_mut().zip(pattern.iter()) {
                *b ^= p;
            }
        }
    }
    let word = mask_word(mask);
    let mut words = blocks.into_remainder().chunks_exact_mut(8);
    for w in &mut words {
        let v = u64::from_ne_bytes((&*w).try_into().expect("8 bytes")) ^ word;
        w.copy_from_slice(&v.to_ne_bytes());
    }
    for (i, b) in words.into_remainder().iter_mut().enumerate() {
        *b ^= mask[i & 3];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mask_matches_the_simple_loop() {
        let mask = [0x12, 0x34, 0x56, 0x78];
        for len in 0..300 {
            let data: Vec<u8> = (0..len).map(|i| (i * 7 % 256) as u8).collect();
            let mut fast = data.clone();
            apply_mask(&mut fast, mask);
            let slow: Vec<u8> = data
                .iter()
                .enumerate()
                .map(|(i, b)| b ^ mask[i & 3])
                .collect();
            assert_eq!(fast, slow, "length {len}");
            let mut appended = BytesMut::from(&b"head"[..]);
            put_masked(&mut appended, &data, mask);
            assert_eq!(&appended[..4], b"head");
            assert_eq!(&appended[4..], &slow[..], "put_masked, length {len}");
        }
    }
}
