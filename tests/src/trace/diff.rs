//! A unified diff of two texts, line by line (longest common subsequence; trace outputs
//! are tens of lines, so the quadratic table is small).

/// `expected` against `actual` as `diff -u` prints it (3 lines of context), or an empty
/// string when they are equal.
pub fn unified(expected: &str, actual: &str, from: &str, to: &str) -> String {
    let a: Vec<&str> = expected.lines().collect();
    let b: Vec<&str> = actual.lines().collect();
    if a == b && expected.ends_with('\n') == actual.ends_with('\n') {
        return String::new();
    }
    // lcs[i][j]: common lines of a[i..] and b[j..].
    let mut lcs = vec![vec![0u32; b.len() + 1]; a.len() + 1];
    for i in (0..a.len()).rev() {
        for j in (0..b.len()).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    // The edit script: (' ' | '-' | '+', line index in a, line index in b); on a tie a
    // deletion goes first, as diff prints it.
    let mut ops: Vec<(char, usize, usize)> = Vec::new();
    let (mut i, mut j) = (0, 0);
    while i < a.len() || j < b.len() {
        if i < a.len() && j < b.len() && a[i] == b[j] {
            ops.push((' ', i, j));
            i += 1;
            j += 1;
        } else if j < b.len() && (i == a.len() || lcs[i][j + 1] > lcs[i + 1][j]) {
            ops.push(('+', i, j));
            j += 1;
        } else {
            ops.push(('-', i, j));
            i += 1;
        }
    }
    const CONTEXT: usize = 3;
    let mut out = format!("--- {from}\n+++ {to}\n");
    let changed: Vec<usize> = (0..ops.len()).filter(|&k| ops[k].0 != ' ').collect();
    if changed.is_empty() {
        out += "\\ No newline at end of file (only the final newline differs)\n";
        return out;
    }
    let mut k = 0;
    while k < changed.len() {
        // One hunk: changes no more than 2*CONTEXT unchanged lines apart.
        let start = changed[k].saturating_sub(CONTEXT);
        let mut end = changed[k];
        while k < changed.len() && changed[k] <= end + 2 * CONTEXT + 1 {
            end = changed[k];
            k += 1;
        }
        let end = (end + CONTEXT + 1).min(ops.len());
        let hunk = &ops[start..end];
        let a_len = hunk.iter().filter(|o| o.0 != '+').count();
        let b_len = hunk.iter().filter(|o| o.0 != '-').count();
        let (a0, b0) = (hunk[0].1, hunk[0].2);
        out += &format!(
            "@@ -{},{a_len} +{},{b_len} @@\n",
            a0 + usize::from(a_len > 0),
            b0 + usize::from(b_len > 0)
        );
        for &(op, i, j) in hunk {
            let line = if op == '+' { b[j] } else { a[i] };
            out += &format!("{op}{line}\n");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::unified;

    #[test]
    fn equal_texts_have_no_diff() {
        assert_eq!(unified("a\nb\n", "a\nb\n", "x", "y"), "");
    }

    #[test]
    fn a_changed_line_is_a_hunk_with_context() {
        let a = "1\n2\n3\n4\n5\n6\n7\n8\n9\n";
        let b = "1\n2\n3\n4\nfive\n6\n7\n8\n9\n";
        assert_eq!(
            unified(a, b, "ovn-trace", "ovnest"),
            "--- ovn-trace\n+++ ovnest\n@@ -2,7 +2,7 @@\n 2\n 3\n 4\n-5\n+five\n 6\n 7\n 8\n"
        );
    }

    #[test]
    fn insertions_and_deletions_at_the_ends() {
        let d = unified("a\nb\n", "b\nc\n", "x", "y");
        assert_eq!(d, "--- x\n+++ y\n@@ -1,2 +1,2 @@\n-a\n b\n+c\n");
    }
}
