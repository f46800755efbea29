package logstore

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/fb"
	"github.com/dgraph-io/badger/v4/options"
	"github.com/dgraph-io/badger/v4/table"
	"github.com/dgraph-io/ristretto/v2"
	"github.com/dgraph-io/ristretto/v2/z"
)

// DamageError says that a badger database is damaged: a file is missing,
// truncated or overwritten. Opening it would make badger either panic (a
// table it cannot parse), or repair it silently by dropping what it cannot
// read (the tail of a write-ahead log after a bad record, a table whose
// checksum fails, every table when MANIFEST is missing): data the node
// acknowledged would be lost. [Verify] returns it before badger sees the
// files.
type DamageError struct {
	Dir     string // the database folder
	File    string // the damaged file, relative to Dir
	Problem string // what was found
}

func (e *DamageError) Error() string {
	return fmt.Sprintf("%s: %s", filepath.Join(e.Dir, e.File), e.Problem)
}

func damaged(dir, file, format string, args ...any) *DamageError {
	return &DamageError{Dir: dir, File: file, Problem: fmt.Sprintf(format, args...)}
}

// Verify checks the files of the badger database in dir without opening
// it, and without writing anything: MANIFEST present and whole, every table
// it names present with its index and every block checksum intact, every
// write-ahead log (.mem) and value log (.vlog) readable record by record.
// key is the encryption key (nil: none). It returns nil for a missing or
// empty dir, a *DamageError for damage, and another error when it could not
// check (a file it cannot read, a wrong key: see [KeyError]).
//
// A record torn at the very end of a log (a power cut during a write that
// was never acknowledged) is not damage: badger drops it, as it should. A
// bad record followed by good ones is.
func Verify(dir string, key []byte) error { return verify(dir, key, nil, nil) }

// VerifyAtStart is Verify as a node runs it at every start: the same,
// except that of the value logs only the newest, the one badger appends
// to (where a crash leaves a torn write), is read record by record; older
// value logs are immutable and only their header is checked. Reading every
// value log made a node with a few hundred thousand raft entries take 20 s
// to start (the chaos suite's restart timed out); Verify, which
// `stationsync rebuild` runs, still reads them all.
//
// Tables are immutable once written: a table whose blocks were all
// verified at an earlier start, and whose size and modification time have
// not changed since (dir + ".verified" records them), only has its index
// read. A table overwritten since has a new modification time and is read
// whole again.
func VerifyAtStart(dir string, key []byte) error {
	known := readVerified(dir)
	seen := map[string]string{}
	if err := verify(dir, key, known, seen); err != nil {
		return err
	}
	writeVerified(dir, seen)
	return nil
}

// verifiedFile records the tables VerifyAtStart read whole: name -> size
// and modification time.
func verifiedFile(dir string) string { return filepath.Clean(dir) + ".verified" }

func tableStamp(fi os.FileInfo) string {
	return fmt.Sprintf("%d:%d", fi.Size(), fi.ModTime().UnixNano())
}

func readVerified(dir string) map[string]string {
	m := map[string]string{}
	b, err := os.ReadFile(verifiedFile(dir))
	if err == nil {
		_ = json.Unmarshal(b, &m) // unreadable: verify every table again
	}
	return m
}

func writeVerified(dir string, m map[string]string) {
	b, err := json.Marshal(m)
	if err != nil {
		return
	}
	tmp := verifiedFile(dir) + ".tmp"
	if os.WriteFile(tmp, b, 0o600) == nil {
		_ = os.Rename(tmp, verifiedFile(dir))
	}
}

// verify checks dir; known == nil reads everything (Verify), else tables
// whose stamp is in known have only their index read and older value logs
// only their header (VerifyAtStart), and seen collects the stamps of the
// tables checked.
func verify(dir string, key []byte, known, seen map[string]string) error {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	var ssts, logs []string
	hasManifest := false
	for _, e := range entries {
		name := e.Name()
		switch {
		case name == "MANIFEST":
			hasManifest = true
		case strings.HasSuffix(name, ".sst"):
			ssts = append(ssts, name)
		case strings.HasSuffix(name, ".mem"), strings.HasSuffix(name, ".vlog"):
			logs = append(logs, name)
		}
	}
	if !hasManifest {
		if len(ssts)+len(logs) > 0 {
			return damaged(dir, "MANIFEST", "missing, while %d table and %d log files are there (badger would start an empty store and delete the tables)", len(ssts), len(logs))
		}
		return nil
	}
	mf, err := readManifest(dir)
	if err != nil {
		return err
	}
	// Every table MANIFEST names must be there (a table that is there but
	// not named is a leftover of an interrupted compaction: badger deletes
	// it, rightly).
	ids := make([]uint64, 0, len(mf.Tables))
	for id := range mf.Tables {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		name := tableName(id)
		if !slices.Contains(ssts, name) {
			return damaged(dir, name, "missing (MANIFEST names it)")
		}
	}
	if len(ids) > 0 {
		kr, err := badger.OpenKeyRegistry(badger.KeyRegistryOptions{Dir: dir, ReadOnly: true, EncryptionKey: key, EncryptionKeyRotationDuration: keyRotation})
		if err != nil {
			if errors.Is(err, badger.ErrEncryptionKeyMismatch) {
				return KeyError(dir, key, err)
			}
			return damaged(dir, badger.KeyRegistryFileName, "unreadable: %v", err)
		}
		defer kr.Close()
		// One index cache for every table (encrypted tables need one).
		cache, err := newIndexCache()
		if err != nil {
			return err
		}
		defer cache.Close()
		for _, id := range ids {
			name := tableName(id)
			fi, err := os.Stat(filepath.Join(dir, name))
			if err != nil {
				return fmt.Errorf("verify %s: %w", filepath.Join(dir, name), err)
			}
			stamp := tableStamp(fi)
			whole := known == nil || known[name] != stamp
			if err := verifyTable(dir, id, mf.Tables[id], kr, cache, whole); err != nil {
				return err
			}
			if seen != nil {
				seen[name] = stamp
			}
		}
	}
	slices.Sort(logs)
	newestVlog := ""
	for _, name := range logs {
		if strings.HasSuffix(name, ".vlog") && vlogID(name) >= vlogID(newestVlog) {
			newestVlog = name
		}
	}
	for _, name := range logs {
		if known != nil && strings.HasSuffix(name, ".vlog") && name != newestVlog {
			if err := verifyLogHeader(dir, name); err != nil {
				return err
			}
			continue
		}
		if err := verifyLog(dir, name); err != nil {
			return err
		}
	}
	return nil
}

// vlogID is the number of a value log file ("000012.vlog": 12; -1 for
// "").
func vlogID(name string) int64 {
	id, err := strconv.ParseInt(strings.TrimSuffix(name, ".vlog"), 10, 64)
	if err != nil {
		return -1
	}
	return id
}

// verifyLogHeader checks that a log file is at least its header long.
func verifyLogHeader(dir, name string) error {
	fi, err := os.Stat(filepath.Join(dir, name))
	if err != nil {
		return fmt.Errorf("verify %s: %w", filepath.Join(dir, name), err)
	}
	if fi.Size() > 0 && fi.Size() < logHeaderSize {
		return damaged(dir, name, "truncated to %d bytes (its header alone is %d)", fi.Size(), logHeaderSize)
	}
	return nil
}

func tableName(id uint64) string { return fmt.Sprintf("%06d.sst", id) }

// readManifest replays MANIFEST (opened read-only). A partial record at its
// end is damage: badger would cut it off, and with it the tables it added.
func readManifest(dir string) (badger.Manifest, error) {
	f, err := os.Open(filepath.Join(dir, "MANIFEST"))
	if err != nil {
		return badger.Manifest{}, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return badger.Manifest{}, err
	}
	mf, end, err := badger.ReplayManifestFile(f, 0, badger.DefaultOptions(dir).WithLogger(nil))
	if err != nil {
		return mf, damaged(dir, "MANIFEST", "unreadable (%v)", err)
	}
	if end < fi.Size() {
		return mf, damaged(dir, "MANIFEST", "ends in a partial record: %d of its %d bytes are readable (truncated or overwritten)", end, fi.Size())
	}
	return mf, nil
}

// verifyTable opens one table read-only with every block's checksum
// verified. badger panics on some damage (a truncated footer, a garbled
// index): here that panic is recovered and reported.
func verifyTable(dir string, id uint64, tm badger.TableManifest, kr *badger.KeyRegistry, cache *ristretto.Cache[uint64, *fb.TableIndex], whole bool) (err error) {
	name := tableName(id)
	defer func() {
		if r := recover(); r != nil {
			err = damaged(dir, name, "cannot be parsed: truncated or overwritten (badger: %s)", firstLine(strings.Trim(fmt.Sprint(r), "= ")))
		}
	}()
	// The table is read through a memory map. In a store badger has open,
	// a compaction may delete it meanwhile, and badger truncates a table
	// to zero before removing it: a read of the map past the new end is a
	// SIGBUS, which kills the process unless it is a panic (recovered
	// above; VerifyNewTables then sees the file changed and skips it).
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	dk, err := kr.DataKey(tm.KeyID)
	if err != nil {
		return damaged(dir, name, "its encryption data key %d is not in %s (%v)", tm.KeyID, badger.KeyRegistryFileName, err)
	}
	mf, err := z.OpenMmapFile(filepath.Join(dir, name), os.O_RDONLY, 0)
	if err != nil && !errors.Is(err, z.NewFile) {
		return fmt.Errorf("verify %s: %w", filepath.Join(dir, name), err)
	}
	def := badger.DefaultOptions(dir)
	opts := table.Options{
		ReadOnly:           true,
		ChkMode:            options.NoVerification,
		BlockSize:          def.BlockSize,
		BloomFalsePositive: def.BloomFalsePositive,
		Compression:        tm.Compression,
		DataKey:            dk,
		TableSize:          uint64(baseTableSize),
	}
	if whole {
		opts.ChkMode = options.OnTableRead // every block's checksum
	}
	if dk != nil {
		opts.IndexCache = cache
	}
	t, err := table.OpenTable(mf, opts)
	if err != nil {
		mf.Close(-1)
		return damaged(dir, name, "%s", firstLine(err.Error()))
	}
	t.MmapFile.Close(-1) // not DecrRef: that deletes the file
	return nil
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	return s
}

// logHeaderSize is the header of badger's .mem and .vlog files: an 8-byte
// data key id and a 12-byte IV.
const logHeaderSize = 20

// maxCRCWork bounds the bytes hashed while looking for a good record after
// a bad one; past it the bad record counts as damage.
const maxCRCWork = 256 << 20

// verifyLog reads a write-ahead log (.mem) or value log (.vlog) record by
// record (badger's format: meta, user meta, uvarint key length, value
// length and expiry, key and value as stored, CRC32-C of all that). Records
// are checked as stored, so no key is needed.
func verifyLog(dir, name string) error {
	path := filepath.Join(dir, name)
	mf, err := z.OpenMmapFile(path, os.O_RDONLY, 0)
	if err != nil && !errors.Is(err, z.NewFile) {
		return fmt.Errorf("verify %s: %w", path, err)
	}
	defer mf.Close(-1)
	b := mf.Data
	if len(b) == 0 {
		return nil
	}
	if len(b) < logHeaderSize {
		return damaged(dir, name, "truncated to %d bytes (its header alone is %d)", len(b), logHeaderSize)
	}
	off := logHeaderSize
	for off < len(b) {
		n, st := parseRecord(b, off)
		switch st {
		case recOK:
			off += n
			continue
		case recEnd:
			if i := nonZero(b[off:]); i >= 0 {
				if _, ok := findRecord(b, off+i); ok {
					return damaged(dir, name, "bytes %d.. are overwritten: readable records follow unreadable ones", off)
				}
			}
			return nil
		case recShort:
			return damaged(dir, name, "truncated: the record at byte %d runs past the end of the file (%d bytes)", off, len(b))
		case recBad:
			if at, ok := findRecord(b, off+1); ok {
				return damaged(dir, name, "the record at byte %d is corrupt and readable records follow (at byte %d)", off, at)
			}
			return nil // a torn last write: never acknowledged, badger drops it
		}
	}
	return nil
}

type recState int

const (
	recOK    recState = iota
	recEnd            // an empty key: where badger stops reading (zeros)
	recShort          // the record runs past the end of the file
	recBad            // unparsable header or CRC mismatch
)

// parseRecord checks the record at off; it returns its length.
func parseRecord(b []byte, off int) (int, recState) {
	if len(b)-off < 2 {
		return 0, recShort
	}
	p := off + 2
	klen, n := binary.Uvarint(b[p:])
	if n <= 0 {
		return 0, recBad
	}
	p += n
	vlen, n := binary.Uvarint(b[p:])
	if n <= 0 {
		return 0, recBad
	}
	p += n
	if _, n = binary.Uvarint(b[p:]); n <= 0 {
		return 0, recBad
	}
	p += n
	if klen == 0 {
		return 0, recEnd
	}
	if klen > 1<<16 || vlen > 1<<31 {
		return 0, recBad
	}
	end := uint64(p) + klen + vlen + crc32.Size
	if end > uint64(len(b)) {
		return 0, recShort
	}
	sum := crc32.Checksum(b[off:end-crc32.Size], castagnoli)
	if binary.BigEndian.Uint32(b[end-crc32.Size:end]) != sum {
		return int(end) - off, recBad
	}
	return int(end) - off, recOK
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// findRecord looks for a good record (non-empty key, matching CRC) at or
// after from.
func findRecord(b []byte, from int) (int, bool) {
	work := 0
	for p := from; p+2 < len(b); p++ {
		if b[p+2] == 0 { // a zero key length is never a record
			continue
		}
		n, st := parseRecord(b, p)
		if st == recOK {
			return p, true
		}
		work += n
		if work > maxCRCWork {
			return p, true // cannot tell: count it as damage
		}
	}
	return 0, false
}

// nonZero returns the index of the first non-zero byte of b, or -1.
func nonZero(b []byte) int {
	for i, c := range b {
		if c != 0 {
			return i
		}
	}
	return -1
}

// StoreFiles lists the badger files in dir by kind, for messages.
func StoreFiles(dir string) string {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err.Error()
	}
	count := map[string]int{}
	for _, e := range entries {
		ext := filepath.Ext(e.Name())
		if ext == "" {
			ext = e.Name()
		}
		count[ext]++
	}
	var parts []string
	for k, v := range count {
		parts = append(parts, k+"="+strconv.Itoa(v))
	}
	slices.Sort(parts)
	return strings.Join(parts, " ")
}

// newIndexCache is the table-index cache a check opens tables with
// (encrypted tables need one).
func newIndexCache() (*ristretto.Cache[uint64, *fb.TableIndex], error) {
	return ristretto.NewCache(&ristretto.Config[uint64, *fb.TableIndex]{NumCounters: 64, MaxCost: 4 << 20, BufferItems: 64})
}

// VerifyNewTables reads whole, with every block's checksum, the tables of
// the store in dir that its ".verified" record does not list yet, and adds
// them; tables gone since are dropped from the record. Unlike
// [VerifyAtStart] it is meant for a store badger has open: tables are
// immutable once written, one a compaction deletes meanwhile is skipped,
// and a MANIFEST record being appended is not read yet. It returns how
// many tables it read, and a *DamageError for a damaged table (which stays
// out of the record, so the next start refuses the store).
//
// A node runs it in the background so that its next start reads only the
// tables written since the last pass: VerifyAtStart read 1 GiB of tables
// of a node holding 1,000,000 events in 8.5 s, all of them written while
// the node ran.
func VerifyNewTables(dir string, key []byte) (int, error) {
	mf, err := readManifestPrefix(dir)
	if err != nil || len(mf.Tables) == 0 {
		return 0, err
	}
	known := readVerified(dir)
	seen := map[string]string{}
	pending := map[uint64]string{} // table id -> its stamp before it is read
	for id := range mf.Tables {
		name := tableName(id)
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			continue // deleted by a compaction since MANIFEST was read
		}
		if stamp := tableStamp(fi); known[name] == stamp {
			seen[name] = stamp
		} else {
			pending[id] = stamp
		}
	}
	if len(pending) == 0 {
		if len(seen) != len(known) {
			writeVerified(dir, seen)
		}
		return 0, nil
	}
	kr, err := badger.OpenKeyRegistry(badger.KeyRegistryOptions{Dir: dir, ReadOnly: true, EncryptionKey: key, EncryptionKeyRotationDuration: keyRotation})
	if err != nil {
		return 0, fmt.Errorf("verify new tables in %s: key registry: %w", dir, err)
	}
	defer kr.Close()
	cache, err := newIndexCache()
	if err != nil {
		return 0, err
	}
	defer cache.Close()
	read := 0
	var damage error
	for _, id := range slices.Sorted(maps.Keys(pending)) {
		name := tableName(id)
		err := verifyTable(dir, id, mf.Tables[id], kr, cache, true)
		if fi, statErr := os.Stat(filepath.Join(dir, name)); statErr != nil || tableStamp(fi) != pending[id] {
			continue // deleted (truncated first) while it was read: what was read proves nothing
		}
		if err != nil {
			if damage == nil {
				damage = err
			}
			continue
		}
		read++
		seen[name] = pending[id]
	}
	writeVerified(dir, seen)
	return read, damage
}

// readManifestPrefix replays the readable part of MANIFEST: in a store
// badger has open, a record may be half-appended.
func readManifestPrefix(dir string) (badger.Manifest, error) {
	f, err := os.Open(filepath.Join(dir, "MANIFEST"))
	if errors.Is(err, fs.ErrNotExist) {
		return badger.Manifest{}, nil
	}
	if err != nil {
		return badger.Manifest{}, err
	}
	defer f.Close()
	mf, _, err := badger.ReplayManifestFile(f, 0, badger.DefaultOptions(dir).WithLogger(nil))
	if err != nil {
		return mf, fmt.Errorf("read %s: %w", filepath.Join(dir, "MANIFEST"), err)
	}
	return mf, nil
}
