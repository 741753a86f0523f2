package pgutil

import (
	"encoding/binary"
	"errors"
	"strconv"
	"strings"
)

// PostgreSQL's binary numeric format: a header of four 16-bit words (number
// of base-10000 digits, weight of the first digit, sign, display scale)
// followed by the digits. Converting straight between that and decimal text
// keeps values exact and avoids math/big, which dominated the profile of a
// copy with one numeric column.
const (
	numericPos  = 0x0000
	numericNeg  = 0x4000
	numericNaN  = 0xC000
	numericPInf = 0xD000
	numericNInf = 0xF000
)

// ErrNumericSyntax is returned for text that is not a decimal number.
var ErrNumericSyntax = errors.New("invalid numeric syntax")

// NumericBinaryToText renders a binary numeric value as exact decimal text,
// with exactly dscale fractional digits, as PostgreSQL's numeric_out does.
func NumericBinaryToText(src []byte) (string, error) {
	if len(src) < 8 {
		return "", errors.New("numeric: short buffer")
	}
	ndigits := int(binary.BigEndian.Uint16(src[0:]))
	weight := int(int16(binary.BigEndian.Uint16(src[2:])))
	sign := binary.BigEndian.Uint16(src[4:])
	dscale := int(binary.BigEndian.Uint16(src[6:]))
	if len(src) < 8+2*ndigits {
		return "", errors.New("numeric: short buffer")
	}
	switch sign {
	case numericNaN:
		return "NaN", nil
	case numericPInf:
		return "Infinity", nil
	case numericNInf:
		return "-Infinity", nil
	}
	digit := func(i int) int {
		if i < 0 || i >= ndigits {
			return 0
		}
		return int(binary.BigEndian.Uint16(src[8+2*i:]))
	}
	b := make([]byte, 0, 4*(max(weight, 0)+1)+dscale+2)
	if sign == numericNeg {
		b = append(b, '-')
	}
	if weight < 0 {
		b = append(b, '0')
	} else {
		for i := 0; i <= weight; i++ {
			if i == 0 {
				b = strconv.AppendInt(b, int64(digit(0)), 10)
			} else {
				b = appendGroup(b, digit(i), 4)
			}
		}
	}
	if dscale > 0 {
		b = append(b, '.')
		for k, produced := 0, 0; produced < dscale; k++ {
			n := min(4, dscale-produced)
			b = appendGroup(b, digit(weight+1+k), n)
			produced += n
		}
	}
	return string(b), nil
}

// appendGroup appends the first n of the four decimal digits of d.
func appendGroup(b []byte, d, n int) []byte {
	var g [4]byte
	g[0] = byte('0' + d/1000)
	g[1] = byte('0' + d/100%10)
	g[2] = byte('0' + d/10%10)
	g[3] = byte('0' + d%10)
	return append(b, g[:n]...)
}

// AppendNumericBinary appends the binary numeric encoding of decimal text
// such as "-12.50", "1e-3" or "NaN" (without the length prefix).
func AppendNumericBinary(buf []byte, s string) ([]byte, error) {
	switch s {
	case "NaN":
		return appendNumericHeader(buf, 0, 0, numericNaN, 0), nil
	case "Infinity", "+Infinity", "inf", "+inf":
		return appendNumericHeader(buf, 0, 0, numericPInf, 0), nil
	case "-Infinity", "-inf":
		return appendNumericHeader(buf, 0, 0, numericNInf, 0), nil
	}
	sign := uint16(numericPos)
	if s != "" && (s[0] == '-' || s[0] == '+') {
		if s[0] == '-' {
			sign = numericNeg
		}
		s = s[1:]
	}
	exp := 0
	if i := strings.IndexAny(s, "eE"); i >= 0 {
		e, err := strconv.Atoi(s[i+1:])
		if err != nil || e > 1000 || e < -1000 {
			return nil, ErrNumericSyntax
		}
		exp, s = e, s[:i]
	}
	intS, fracS := s, ""
	if i := strings.IndexByte(s, '.'); i >= 0 {
		intS, fracS = s[:i], s[i+1:]
	}
	if intS == "" && fracS == "" {
		return nil, ErrNumericSyntax
	}
	for _, part := range [2]string{intS, fracS} {
		for i := 0; i < len(part); i++ {
			if part[i] < '0' || part[i] > '9' {
				return nil, ErrNumericSyntax
			}
		}
	}
	// Apply the exponent by moving the decimal point.
	if exp > 0 {
		move := min(exp, len(fracS))
		intS, fracS = intS+fracS[:move], fracS[move:]
		intS += strings.Repeat("0", exp-move)
	} else if exp < 0 {
		n := -exp
		if n > len(intS) {
			intS = strings.Repeat("0", n-len(intS)) + intS
		}
		intS, fracS = intS[:len(intS)-n], intS[len(intS)-n:]+fracS
	}
	dscale := len(fracS)
	intS = strings.TrimLeft(intS, "0")
	// Align both parts to base-10000 groups around the decimal point.
	if r := len(intS) % 4; r != 0 {
		intS = strings.Repeat("0", 4-r) + intS
	}
	if r := len(fracS) % 4; r != 0 {
		fracS += strings.Repeat("0", 4-r)
	}
	all := intS + fracS
	weight := len(intS)/4 - 1
	groups := make([]uint16, 0, len(all)/4)
	for i := 0; i < len(all); i += 4 {
		g := (int(all[i]-'0')*1000 + int(all[i+1]-'0')*100 + int(all[i+2]-'0')*10 + int(all[i+3]-'0'))
		groups = append(groups, uint16(g))
	}
	for len(groups) > 0 && groups[0] == 0 {
		groups = groups[1:]
		weight--
	}
	for len(groups) > 0 && groups[len(groups)-1] == 0 {
		groups = groups[:len(groups)-1]
	}
	if len(groups) == 0 {
		weight, sign = 0, numericPos
	}
	if dscale > 0x3FFF || weight > 0x7FFF || weight < -0x8000 {
		return nil, ErrNumericSyntax
	}
	buf = appendNumericHeader(buf, len(groups), weight, sign, dscale)
	for _, g := range groups {
		buf = binary.BigEndian.AppendUint16(buf, g)
	}
	return buf, nil
}

func appendNumericHeader(buf []byte, ndigits, weight int, sign uint16, dscale int) []byte {
	buf = binary.BigEndian.AppendUint16(buf, uint16(ndigits))
	buf = binary.BigEndian.AppendUint16(buf, uint16(int16(weight)))
	buf = binary.BigEndian.AppendUint16(buf, sign)
	return binary.BigEndian.AppendUint16(buf, uint16(dscale))
}
