package main

import (
	"fmt"
	"strings"
)

// A section is one more comparison of the run (transport, catch-up,
// center consolidation, footprint at scale), each in its own file. It
// registers itself in init with addSection; runAll runs the sections
// after the write rows in registration order (file name order), and
// markdown appends each one's text. `-only NAME[,NAME]` runs just those
// sections (no write rows), for working on one; `-skip NAME[,NAME]` leaves
// sections out.
type section struct {
	name string
	// run measures; smoke is the tiny configuration of make test. It
	// reports a broken benchmark with rep.fail (make test fails then).
	run func(rep *report, root string, smoke bool)
	// markdown is the section's text (a "## ..." heading and its table),
	// from what run measured.
	markdown func(rep *report) string
}

var sections []section

func addSection(s section) { sections = append(sections, s) }

// selected reports whether only names the section ("" runs everything)
// and skip does not.
func selected(only, skip, name string) bool {
	return (only == "" || listed(only, name)) && !listed(skip, name)
}

func listed(list, name string) bool {
	for _, n := range strings.Split(list, ",") {
		if strings.TrimSpace(n) == name {
			return true
		}
	}
	return false
}

func (rep *report) runSections(root string) {
	for _, s := range sections {
		if !selected(rep.only, rep.skip, s.name) {
			continue
		}
		fmt.Printf("bench: section %s\n", s.name)
		s.run(rep, root+"/"+s.name, rep.smoke)
	}
}

func (rep *report) sectionsMarkdown(b *strings.Builder) {
	for _, s := range sections {
		if selected(rep.only, rep.skip, s.name) {
			b.WriteString("\n")
			b.WriteString(s.markdown(rep))
		}
	}
}

// sectionResults holds what the sections measured: each section file
// adds its own field here (and nothing else outside its file).
type sectionResults struct {
	transport transportResults // transport.go
	catchup   catchupResults   // catchup.go
	center    centerResults    // center.go
	footprint footprintResult  // footprint.go
}
