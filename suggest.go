package main

import (
	"strings"
)

// "Did you mean": a misspelt flag, variable or file key is answered with
// the nearest setting name, when one is near enough to be what was meant.

// closest returns the candidate nearest to name by edit distance (letters
// inserted, deleted, replaced or swapped), both compared after norm, or ""
// when none is close: at most a third of the name's length away (at least
// one edit, at most two), so a short or unrelated name gets no guess. Of
// candidates equally near, the first wins.
func closest(name string, candidates []string, norm func(string) string) string {
	n := []rune(norm(name))
	limit := min(2, max(1, len(n)/3))
	best, bestDist := "", limit+1
	for _, c := range candidates {
		m := []rune(norm(c))
		if abs(len(n)-len(m)) > limit {
			continue // lengths alone are too far apart (and a long name costs nothing)
		}
		if d := editDistance(n, m); d < bestDist {
			best, bestDist = c, d
		}
	}
	return best
}

// editDistance is the optimal string alignment distance between s and t:
// the fewest insertions, deletions, replacements and swaps of two adjacent
// characters that turn one into the other.
func editDistance(s, t []rune) int {
	// d[i][j] is the distance between s[:i] and t[:j].
	d := make([][]int, len(s)+1)
	for i := range d {
		d[i] = make([]int, len(t)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(s); i++ {
		for j := 1; j <= len(t); j++ {
			cost := 1
			if s[i-1] == t[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && s[i-1] == t[j-2] && s[i-2] == t[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(s)][len(t)]
}

func abs(n int) int {
	if n < 0 {
		return -n
	}
	return n
}

// settingName is a flag or file key reduced to the words of its name:
// lower case, words joined by sep, without a leading herd prefix, so that
// --HERD_WORKERS and a key HERD_WORKERS are near --workers and workers.
func settingName(sep string) func(string) string {
	return func(s string) string {
		s = strings.ToLower(s)
		s = strings.NewReplacer("-", sep, "_", sep).Replace(s)
		return strings.TrimPrefix(s, "herd"+sep)
	}
}

// suggestFlag is the flag nearest to an unknown one (name without its
// dashes), with its dashes, or "".
func suggestFlag(name string) string {
	flags := []string{"config", "help"}
	for _, s := range settings {
		flags = append(flags, s.flag)
	}
	if c := closest(name, flags, settingName("-")); c != "" {
		return "--" + c
	}
	return ""
}

// suggestKey is the file key nearest to an unknown one, or "".
func suggestKey(key string) string {
	keys := make([]string, len(settings))
	for i, s := range settings {
		keys[i] = s.key
	}
	return closest(key, keys, settingName("_"))
}

// suggestVariable is the variable nearest to an unknown HERD_* one
// (HERD_CONFIG included), or "".
func suggestVariable(name string) string {
	vars := []string{configFileVar}
	for _, s := range settings {
		vars = append(vars, s.env)
	}
	return closest(name, vars, func(s string) string { return strings.TrimPrefix(strings.ToUpper(s), "HERD_") })
}
