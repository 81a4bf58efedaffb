package executor

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// feed runs an emitter over events and returns what it emitted.
func feed(commands []string, events []event) []Line {
	var out []Line
	ch := make(chan event, len(events))
	for _, ev := range events {
		ch <- ev
	}
	close(ch)
	(&emitter{emit: func(l Line) { out = append(out, l) }, commands: commands}).run(ch)
	return out
}

// TestEmitterOrdersAnyInterleaving feeds the two streams of a job,
// interleaved at random, and checks that every "$ command" line comes
// after all output of earlier commands and before all output of its own.
func TestEmitterOrdersAnyInterleaving(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for iter := range 2000 {
		ncmd := 1 + rng.IntN(5)
		commands := make([]string, ncmd)
		var streams [2][]event
		for c := 1; c <= ncmd; c++ {
			commands[c-1] = fmt.Sprintf("cmd%d", c)
			for i, s := range []Stream{Stdout, Stderr} {
				streams[i] = append(streams[i], event{kind: markerEvent, stream: s, n: c, time: time.Now()})
				for l := range rng.IntN(4) {
					streams[i] = append(streams[i], event{kind: lineEvent, stream: s, text: fmt.Sprintf("%d.%s.%d", c, s, l), time: time.Now()})
				}
			}
		}
		var events []event
		for i, s := range []Stream{Stdout, Stderr} {
			streams[i] = append(streams[i], event{kind: eofEvent, stream: s})
		}
		for len(streams[0])+len(streams[1]) > 0 {
			i := rng.IntN(2)
			if len(streams[i]) == 0 {
				i = 1 - i
			}
			events = append(events, streams[i][0])
			streams[i] = streams[i][1:]
		}

		cur := 0
		seen := map[Stream]int{}
		for _, l := range feed(commands, events) {
			if l.Stream == System {
				cur++
				if l.Text != fmt.Sprintf("$ cmd%d", cur) {
					t.Fatalf("iteration %d: system line %q, want command %d", iter, l.Text, cur)
				}
				continue
			}
			var c int
			fmt.Sscanf(l.Text, "%d.", &c)
			if c != cur {
				t.Fatalf("iteration %d: line %q after the line of command %d", iter, l.Text, cur)
			}
			seen[l.Stream]++
		}
		if cur != ncmd {
			t.Fatalf("iteration %d: %d commands announced, want %d", iter, cur, ncmd)
		}
	}
}

func TestEmitterStreamWithoutMarkers(t *testing.T) {
	// Stderr shows marker 1, then its markers are lost while it stays
	// open: its lines are taken for those of the commands before.
	now := time.Now()
	ev := func(kind eventKind, s Stream, n int, text string) event {
		return event{kind: kind, stream: s, n: n, text: text, time: now}
	}
	start := time.Now()
	out := feed([]string{"a", "b", "c"}, []event{
		ev(markerEvent, Stdout, 1, ""), ev(markerEvent, Stderr, 1, ""),
		ev(markerEvent, Stdout, 2, ""), ev(lineEvent, Stdout, 0, "out2"), ev(lineEvent, Stderr, 0, "err2"),
		ev(markerEvent, Stdout, 3, ""), ev(lineEvent, Stdout, 0, "out3"),
		ev(eofEvent, Stdout, 0, ""), ev(eofEvent, Stderr, 0, ""),
	})
	if d := time.Since(start); d > 100*time.Millisecond {
		t.Errorf("took %v, though both streams ended", d)
	}
	var got []string
	for _, l := range out {
		got = append(got, l.Text)
	}
	if g := strings.Join(got, "|"); g != "$ a|err2|$ b|out2|$ c|out3" {
		t.Errorf("got %q", got)
	}
}

func TestSplitter(t *testing.T) {
	var events []event
	s := newSplitter(Stdout, "abcd", func(ev event) { events = append(events, ev) })
	marker := markerPrefix("abcd")
	long := "x" + strings.Repeat("é", MaxLineBytes) // cut inside a character
	input := "one\r\ntwo\npartial" + marker + "7\n" + long + "\n" +
		"trace arcade-abcd-3\n" + marker + "x\n" + "last"
	// In small pieces, to cross every boundary.
	for i := 0; i < len(input); i += 1000 {
		s.write([]byte(input[i:min(i+1000, len(input))]))
	}
	s.flush()

	var got []string
	var longParts []string
	for _, ev := range events {
		switch {
		case ev.kind == markerEvent:
			got = append(got, fmt.Sprintf("M%d", ev.n))
		case strings.ContainsRune(ev.text, 'é'):
			if len(ev.text) > MaxLineBytes || !utf8.ValidString(ev.text) {
				t.Errorf("long line part of %d bytes, valid UTF-8 %v", len(ev.text), utf8.ValidString(ev.text))
			}
			longParts = append(longParts, ev.text)
		default:
			got = append(got, ev.text)
		}
	}
	// A line holding the marker's text but not a marker is the shell's
	// trace of the script: dropped.
	want := []string{"one", "two", "partial", "M7", "last"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("got %q\nwant %q", got, want)
	}
	if strings.Join(longParts, "") != long || len(longParts) != 3 {
		t.Errorf("long line split in %d parts, joined equal: %v", len(longParts), strings.Join(longParts, "") == long)
	}
}

func TestEmitterStopsWaitingForALaggingStream(t *testing.T) {
	ch := make(chan event)
	var out []string
	lines := make(chan string, 100)
	done := make(chan struct{})
	go func() {
		(&emitter{emit: func(l Line) { out = append(out, l.Text); lines <- l.Text }, commands: []string{"a", "b"}}).run(ch)
		close(done)
	}()
	next := func() string {
		select {
		case l := <-lines:
			return l
		case <-time.After(5 * time.Second):
			t.Fatal("no line")
			return ""
		}
	}
	now := time.Now()
	ch <- event{kind: markerEvent, stream: Stdout, n: 1, time: now}
	ch <- event{kind: markerEvent, stream: Stderr, n: 1, time: now}
	if l := next(); l != "$ a" {
		t.Fatalf("got %q", l)
	}
	ch <- event{kind: markerEvent, stream: Stdout, n: 2, time: now}
	ch <- event{kind: lineEvent, stream: Stdout, text: "out", time: now}
	// Stderr keeps coming for a while without its marker: it is waited
	// for until it has been quiet for barrierTimeout.
	start := time.Now()
	for range 3 {
		time.Sleep(barrierTimeout / 2)
		ch <- event{kind: lineEvent, stream: Stderr, text: "err", time: now}
		if l := next(); l != "err" {
			t.Fatalf("got %q, want err", l)
		}
	}
	if l := next(); l != "$ b" {
		t.Fatalf("got %q", l)
	}
	if d := time.Since(start); d < 5*barrierTimeout/2 || d > 4*barrierTimeout {
		t.Errorf("announced after %v", d)
	}
	if l := next(); l != "out" {
		t.Fatalf("got %q", l)
	}
	close(ch)
	<-done
}
