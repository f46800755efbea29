// Package configs holds the example configuration files and the sample
// data the demo embeds: the district's first nine industrial-park stations
// (the annex of the district guideline) and a sample item list.
//
// The sample items use station-local sample codes (XC-S-NNNN), not the
// province's implementing codes: they show the format, they are not the
// district's published catalogue.
package configs

import _ "embed"

// IndustrialParks is samples/industrial-parks.csv: no, area, park, address,
// leading industry, enterprises.
//
//go:embed samples/industrial-parks.csv
var IndustrialParks []byte

// SampleItems is samples/items.csv, an item list with the Chinese column
// headers an office uses.
//
//go:embed samples/items.csv
var SampleItems []byte
