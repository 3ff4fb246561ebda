package guard

import (
	"strings"
	"unicode/utf8"
)

// Folding: before anything is looked for, the body is read as plain ASCII where a character only looks
// like one — so that a disguise costs nothing to see through. Invisible characters (zero-width spaces
// and joiners, soft hyphens, direction marks, variation selectors, the keycap mark of "7️⃣") are
// dropped; fullwidth forms ("０７９１１", "ａｎａ＠ｅｘａｍｐｌｅ．ｃｏｍ"), circled and otherwise enclosed
// digits ("⓪⑦⑨"), mathematical and small-capital letters ("𝐰𝐚.𝐦𝐞", "ᴡᴀ.ᴍᴇ") and the Cyrillic and
// Greek letters that look Latin ("wа.me" with a Cyrillic "а") become their ASCII twin. What is found
// in the folded text is mapped back to the body's bytes, and the placeholder takes the invisible
// characters inside and right after it.

// fold returns body as the finder reads it and, when that differs from body, where each of its bytes
// starts in body: at[i] is the offset in body of the character folded byte i comes from, and
// at[len(folded)] is len(body). A body with nothing to fold (most: ASCII and ordinary letters) is
// returned as is, at nil.
func fold(body string) (string, []int) {
	first := -1
	for i := 0; i < len(body); {
		if body[i] < utf8.RuneSelf {
			i++
			continue
		}
		r, n := utf8.DecodeRuneInString(body[i:])
		if _, ok := folded(r); ok {
			first = i
			break
		}
		i += n
	}
	if first < 0 {
		return body, nil
	}
	var b strings.Builder
	b.Grow(len(body))
	at := make([]int, 0, len(body)+1)
	b.WriteString(body[:first])
	for i := range first {
		at = append(at, i)
	}
	for i := first; i < len(body); {
		r, n := utf8.DecodeRuneInString(body[i:])
		if to, ok := folded(r); ok {
			if to >= 0 {
				b.WriteByte(byte(to))
				at = append(at, i)
			}
		} else {
			b.WriteString(body[i : i+n])
			for k := range n {
				at = append(at, i+k)
			}
		}
		i += n
	}
	return b.String(), append(at, len(body))
}

// folded says whether r is folded and into what ASCII byte (-1: dropped).
func folded(r rune) (rune, bool) {
	switch {
	case r < utf8.RuneSelf:
		return 0, false
	case invisible(r):
		return -1, true
	case r >= 0xFF01 && r <= 0xFF5E: // fullwidth ASCII
		return r - 0xFEE0, true
	case r == 0x3000: // ideographic space
		return ' ', true
	case r >= 0x2460 && r <= 0x2468: // ①–⑨
		return '1' + r - 0x2460, true
	case r >= 0x2474 && r <= 0x247C: // ⑴–⑼
		return '1' + r - 0x2474, true
	case r >= 0x2488 && r <= 0x2490: // ⒈–⒐
		return '1' + r - 0x2488, true
	case r >= 0x24F5 && r <= 0x24FD: // ⓵–⓽
		return '1' + r - 0x24F5, true
	case r >= 0x2776 && r <= 0x277E: // ❶–❾
		return '1' + r - 0x2776, true
	case r >= 0x2780 && r <= 0x2788: // ➀–➈
		return '1' + r - 0x2780, true
	case r >= 0x278A && r <= 0x2792: // ➊–➒
		return '1' + r - 0x278A, true
	case r == 0x24EA || r == 0x24FF || r == 0x1F10B || r == 0x1F10C: // ⓪ ⓿ 🄋 🄌
		return '0', true
	case r >= 0x24B6 && r <= 0x24CF: // Ⓐ–Ⓩ
		return 'a' + r - 0x24B6, true
	case r >= 0x24D0 && r <= 0x24E9: // ⓐ–ⓩ
		return 'a' + r - 0x24D0, true
	case r >= 0x1D400 && r <= 0x1D6A3: // mathematical letters: styles of A–Z a–z, 52 each
		if k := (r - 0x1D400) % 52; k >= 26 {
			return 'a' + k - 26, true
		}
		return 'A' + (r-0x1D400)%52, true
	}
	to, ok := lookalikes[r]
	return to, ok
}

// invisible reports whether r shows nothing (or only changes the character before it): typed between
// digits or inside an address, it hides them from a search and not from the reader.
func invisible(r rune) bool {
	switch {
	case r == 0x00AD, r == 0x034F, r == 0x061C, r == 0x115F, r == 0x1160, r == 0x17B4, r == 0x17B5,
		r == 0x3164, r == 0xFEFF, r == 0xFFA0, r == 0x20E3:
		return true
	case r >= 0x180B && r <= 0x180F, r >= 0x200B && r <= 0x200F, r >= 0x202A && r <= 0x202E,
		r >= 0x2060 && r <= 0x206F, r >= 0xFE00 && r <= 0xFE0F, r >= 0xE0000 && r <= 0xE01EF:
		return true
	}
	return false
}

// lookalikes are letters of other scripts, small capitals and punctuation that are drawn like an ASCII
// character. Only unmistakable twins: a word of Russian or Greek folded this way is still a word, and
// nothing is found in words but links, addresses and digits spelled out.
var lookalikes = map[rune]rune{
	// Cyrillic
	'а': 'a', 'в': 'b', 'е': 'e', 'о': 'o', 'р': 'p', 'с': 'c', 'у': 'y', 'х': 'x', 'ѕ': 's', 'і': 'i',
	'ј': 'j', 'ԁ': 'd', 'һ': 'h', 'ԛ': 'q', 'ԝ': 'w', 'ӏ': 'l', 'А': 'A', 'В': 'B', 'Е': 'E', 'К': 'K',
	'М': 'M', 'Н': 'H', 'О': 'O', 'Р': 'P', 'С': 'C', 'Т': 'T', 'Х': 'X', 'У': 'Y', 'Ѕ': 'S', 'І': 'I',
	'Ј': 'J',
	// Greek
	'ο': 'o', 'α': 'a', 'ν': 'v', 'κ': 'k', 'ρ': 'p', 'Α': 'A', 'Β': 'B', 'Ε': 'E', 'Ζ': 'Z', 'Η': 'H',
	'Ι': 'I', 'Κ': 'K', 'Μ': 'M', 'Ν': 'N', 'Ο': 'O', 'Ρ': 'P', 'Τ': 'T', 'Χ': 'X', 'Υ': 'Y',
	// small capitals
	'ᴀ': 'a', 'ʙ': 'b', 'ᴄ': 'c', 'ᴅ': 'd', 'ᴇ': 'e', 'ꜰ': 'f', 'ɢ': 'g', 'ʜ': 'h', 'ɪ': 'i', 'ᴊ': 'j',
	'ᴋ': 'k', 'ʟ': 'l', 'ᴍ': 'm', 'ɴ': 'n', 'ᴏ': 'o', 'ᴘ': 'p', 'ʀ': 'r', 'ꜱ': 's', 'ᴛ': 't', 'ᴜ': 'u',
	'ᴠ': 'v', 'ᴡ': 'w', 'ʏ': 'y', 'ᴢ': 'z', 'ɡ': 'g',
	// punctuation
	'﹫': '@', '。': '.', '｡': '.', '﹒': '.', '․': '.', '‐': '-', '‑': '-', '‒': '-', '–': '-', '—': '-',
	'−': '-', '⁄': '/', '∕': '/', '·': '.', '•': '.', '∙': '.', '‧': '.', '・': '.', '･': '.',
}
