package main

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// table collects rows and prints them aligned, numbers right-aligned.
type table struct {
	head []string
	rows [][]string
}

func newTable(head ...string) *table { return &table{head: head} }

func (t *table) row(cells ...string) { t.rows = append(t.rows, cells) }

func (t *table) write(w io.Writer) {
	// The first column (names) is left-aligned, the others (numbers) right.
	w0 := len(t.head[0])
	for _, r := range t.rows {
		w0 = max(w0, len(r[0]))
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	line := func(cells []string) {
		first := cells[0] + strings.Repeat(" ", w0-len(cells[0]))
		fmt.Fprintln(tw, first+"\t"+strings.Join(cells[1:], "\t")+"\t")
	}
	line(t.head)
	sep := make([]string, len(t.head))
	for i, h := range t.head {
		sep[i] = strings.Repeat("-", len(h))
	}
	line(sep)
	for _, r := range t.rows {
		line(r)
	}
	tw.Flush()
}
