#!/usr/bin/env python3
"""Generate domain/src/text/jisx0213_table.rs: the JIS X 0213:2004 repertoire as Unicode.

Source: CPython's euc_jis_2004 codec (built from the x0213.org mapping tables).
Plane 1 is every row; plane 2 only rows 1, 3-5, 8, 12-15 and 78-94, because for the
other rows CPython falls back to JIS X 0212, which is not part of JIS X 0213.
Expect 11,208 single code points and 25 two-code-point sequences: 11,233 in all.

Run from the repository root:  python3 domain/data/gen_jisx0213.py [OUT]
(OUT defaults to the table in the source tree; the tidy test writes elsewhere and compares.)
"""
import pathlib
import sys

PLANE2_ROWS = {1, 3, 4, 5, 8, 12, 13, 14, 15} | set(range(78, 95))
DEFAULT_OUT = pathlib.Path(__file__).resolve().parent.parent / "src" / "text" / "jisx0213_table.rs"


def repertoire():
    singles, pairs = set(), set()
    for plane, prefix in ((1, b""), (2, b"\x8f")):
        for row in range(1, 95):
            if plane == 2 and row not in PLANE2_ROWS:
                continue
            for cell in range(1, 95):
                try:
                    text = (prefix + bytes([row + 0xA0, cell + 0xA0])).decode("euc_jis_2004")
                except UnicodeDecodeError:
                    continue
                if len(text) == 1:
                    singles.add(ord(text))
                else:
                    assert len(text) == 2, text
                    pairs.add((ord(text[0]), ord(text[1])))
    return sorted(singles), sorted(pairs)


def main():
    out = pathlib.Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_OUT
    singles, pairs = repertoire()
    assert len(singles) + len(pairs) == 11233, (len(singles), len(pairs))
    lines = [
        "//! JIS X 0213:2004 repertoire as Unicode scalar values. GENERATED: do not edit.",
        "//! Regenerate with `python3 domain/data/gen_jisx0213.py`; see that script for the source.",
        "",
        f"/// The {len(singles)} characters that map to one Unicode scalar value, sorted.",
        "#[rustfmt::skip]",
        "pub(crate) static SINGLE: [u32; %d] = [" % len(singles),
    ]
    for i in range(0, len(singles), 10):
        lines.append("    " + " ".join(f"0x{c:05X}," for c in singles[i : i + 10]))
    lines += [
        "];",
        "",
        f"/// The {len(pairs)} characters that map to a base and a combining mark, sorted.",
        "#[rustfmt::skip]",
        "pub(crate) static PAIR: [(u32, u32); %d] = [" % len(pairs),
    ]
    for a, b in pairs:
        lines.append(f"    (0x{a:04X}, 0x{b:04X}),")
    lines += ["];", ""]
    out.write_text("\n".join(lines), encoding="utf-8")
    print(f"wrote {out}: {len(singles)} single, {len(pairs)} pairs")


if __name__ == "__main__":
    main()
