package gittest

import (
	"bufio"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strings"
)

// Generate makes a bare repository at dir with files files of 1–4 KB (text
// of a small vocabulary, compressing like source code does) in folders of
// 100, and commits commits: the first adds every file, each later one
// changes 20 of them. The same arguments make the same repository. It
// streams the history into git fast-import and returns the head commit.
func Generate(dir string, files, commits int) (string, error) {
	if out, err := exec.Command("git", "init", "--quiet", "--bare", "--initial-branch=main", dir).CombinedOutput(); err != nil {
		return "", fmt.Errorf("git init: %v: %s", err, out)
	}
	cmd := exec.Command("git", "fast-import", "--quiet", "--done")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), Env...)
	in, err := cmd.StdinPipe()
	if err != nil {
		return "", err
	}
	var errb strings.Builder
	cmd.Stderr = &errb
	if err := cmd.Start(); err != nil {
		return "", err
	}
	w := bufio.NewWriterSize(in, 1<<20)
	rng := rand.New(rand.NewPCG(1, 2))
	words := strings.Fields("func return if else for range var const type struct interface map string int error nil true false " +
		"package import defer go chan select case switch default break continue len cap append make new copy delete panic")
	content := func() string {
		n := 1024 + rng.IntN(3*1024)
		var b strings.Builder
		for b.Len() < n {
			b.WriteString(words[rng.IntN(len(words))])
			if rng.IntN(8) == 0 {
				b.WriteByte('\n')
			} else {
				b.WriteByte(' ')
			}
		}
		return b.String()[:n]
	}
	path := func(i int) string { return fmt.Sprintf("dir%03d/file%05d.txt", i/100, i) }
	for c := 1; c <= commits; c++ {
		msg := fmt.Sprintf("commit %d", c)
		fmt.Fprintf(w, "commit refs/heads/main\nmark :%d\ncommitter Ada Lovelace <ada@example.com> %d +0000\ndata %d\n%s\n", c, 1700000000+c*60, len(msg), msg)
		if c > 1 {
			fmt.Fprintf(w, "from :%d\n", c-1)
		}
		change := func(i int) {
			body := content()
			fmt.Fprintf(w, "M 100644 inline %s\ndata %d\n%s\n", path(i), len(body), body)
		}
		if c == 1 {
			for i := range files {
				change(i)
			}
		} else {
			for range 20 {
				change(rng.IntN(files))
			}
		}
	}
	fmt.Fprint(w, "done\n")
	if err := w.Flush(); err != nil {
		return "", err
	}
	in.Close()
	if err := cmd.Wait(); err != nil {
		return "", fmt.Errorf("git fast-import: %v: %s", err, errb.String())
	}
	out, err := exec.Command("git", "--git-dir", dir, "rev-parse", "refs/heads/main").Output()
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(out)), nil
}
