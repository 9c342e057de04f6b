"""poster.mark — the hidden-ID codec: a 48-bit payload hidden in the pixels of an image.

    from poster.mark import embed, extract
    marked = embed(image, payload, key=key)          # same size and mode (P -> RGB/RGBA)
    extract(suspicious, key=key)  -> payload | None   # None: no mark, wrong key, too damaged

Design (numpy + Pillow only, no model weights)
----------------------------------------------
* **Tile.** A key-derived 32 x 32 grid of +-1 *chips*: 256 sync chips (fixed per key) and 768
  data chips carrying the 258 coded bits (each on ~3 key-permuted chips, XOR-scrambled).
  The grid is turned into a smooth periodic pattern by band-limited (FFT zero-padding)
  interpolation keeping only chip frequencies 6..14.5 cycles/tile: no blotchy low frequencies,
  nothing in the corners that downscaling or JPEG remove first (``tile.py``).
* **Embedding.** The pattern is tiled over the whole image from the top-left corner and added
  equally to R, G and B (pure luminance; alpha untouched). Chip size is relative to the image:
  >= 7 px (so chips are still ~2.5 px after a 0.35x downscale), at most 460 chips on the long
  edge (~2.6 px after an X-style fit to 1200 px), and at least 2.5 tiles on the short side.
  Amplitude follows a perceptual mask computed at ~chip/2.8 resolution: local texture (3x3
  high-pass RMS, eroded so edges do not bleed into flat neighbours) x a luminance factor
  (fades to 0 at black and near white) x alpha^2, scaled towards an RMS of 2.3 grey levels
  (PSNR ~41-43 dB), and hard-capped by contrast masking at 0.35 + 1.0 x local texture RMS grey
  levels, so flat colour and white paper stay (nearly) untouched whatever the image; all
  times ``strength``. Dithered rounding keeps sub-grey-level amplitudes; fully transparent
  pixels are never changed. Embedding runs in bands of 256 rows (the amplitude map is
  upscaled per band with Pillow's own bilinear taps, bit-identical to one full-size resize), so
  its memory beyond the output image is ~2 narrow float maps (8000² RGB: ~370 MB, was ~1.27 GB).
* **Sync (extraction).** The received image is reduced to <= 1024 px long edge (and also
  looked at at half that resolution, for copies whose chips are still big) and its
  high-pass, locally-normalised residual is taken (a spectrally whitened residual is the
  second try; it wins on pixel-art sheets). Scale, aspect and rotation come from the *power
  spectrum*: the periodic mark puts all its energy on the reciprocal lattice of the tile, so
  the mean of the locally normalised power over a candidate lattice (~270 lines) is a very
  sensitive detector (one or two raw autocorrelation peaks were not: image content swamped
  them). A 1-D period scan + local refinement of (px, py, angle) gives the candidates; a
  last try reads rotated / stretched lattices off the peaks of the whitened autocorrelation
  (inverse FFT of the normalised power spectrum) (``sync.py``). A candidate with many periods
  in view (>= 24) goes on only if its comb score stands >= 4 standard deviations above the
  image's own period scan: JPEG grids and pixel-art tiles give unmarked images high raw
  scores, and folding every such candidate was most of the time spent on an image without a
  mark. Each candidate is resampled
  so one period is 96 x 96 samples and all periods are summed (folding). FFT
  cross-correlation with the key's sync pattern gives the cyclic offset (tried on the folded
  tile and its mirror image: horizontally flipped copies). Crops at any offset only change
  that cyclic offset; the tile origin never needs to be in the received image.
* **Bits.** Soft chip values are the band-limited chip estimates of the aligned folded tile;
  soft coded bits are sums over each bit's chips.
* **Error correction and check.** 48-bit payload + CRC-32 (salted with the key) -> K=7 rate-1/3
  convolutional code (133, 171, 165 octal) -> soft-decision Viterbi (``ecc.py``). A result is
  returned only if the CRC matches, so a wrong key, an unmarked or a too-damaged image give
  ``None``. Decoding is only attempted on lattice candidates whose sync peak is >= 4 sigma,
  at most 72 attempts per image, so the chance of a false ID is <= 72 / 2^32 ~ 2e-8 per image
  (measured: 0 in 10,000, see benchmarks/mark.py --false-ids).
  Wrong key: different sync chips, permutation, scrambling and CRC salt.

Informed reading (``informed.py``): ``extract_informed(copy, original, key=...)`` reads the ID
with the unmarked original at hand, as ``poster trace`` can (the archive keeps every original).
The copy is registered on the original (phase correlation over mirror / scale / small turns,
then a Gauss-Newton affine refinement on a pyramid, weighted by local correlation so added
borders do not pull), the original is predicted (for axis-aligned copies resampled exactly as
the copy was, in its pixels, through the same filter at the sub-pixel offset; otherwise
through a fitted tone curve and blur mix on the working grid) and subtracted, places that are
not the original (borders, captions) are masked out, and the rest is weighted by the
embedder's own amplitude map, folded on the known lattice and decoded with the same Viterbi +
CRC check (then re-weighted by where the decoder's tentative answer is seen, if the CRC
failed). Removing the host image removes what limits the blind read, so
this reads the small busy photos, pixel art and sketches the blind read cannot.

Limits (measured, see benchmarks/mark_baselines/RESULTS.md): images smaller than
``MIN_SIDE`` (256 px) on their short side are refused (:class:`MarkError`); extraction needs
~1.6 tile periods in the received image; small busy photos (768x512), sparse pixel-art sheets
on black/transparent backgrounds and small logos do not carry enough mark at ~41 dB PSNR and
are usually not recovered; very elongated images (e.g. 4096x256) are not recovered (their
chips become sub-pixel in the 1024 px working view). Other modes than L/LA/RGB/RGBA/P/PA come
back as L or RGB.
"""

from .codec import MIN_SIDE, Detection, MarkError, embed, extract, extract_detail
from .ecc import PAYLOAD_BITS

__all__ = [
    "MIN_SIDE",
    "PAYLOAD_BITS",
    "Detection",
    "MarkError",
    "embed",
    "extract",
    "extract_detail",
]
