package logstore

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/dgraph-io/badger/v4"
)

// The badger in third_party/badger is patched so that an iterator with a
// prefix takes only the transaction's pending writes with that prefix
// (PATCHES.md there). A prefix scan in a transaction must still see, in
// order and in both directions, exactly the committed and the pending keys
// with its prefix, pending values and deletes winning.
func TestPrefixScanSeesItsPendingWrites(t *testing.T) {
	db := openTestDB(t, false)
	err := db.Update(func(txn *badger.Txn) error {
		for _, k := range []string{"a/1", "b/1", "b/3", "b/5", "c/1"} {
			if err := txn.Set([]byte(k), []byte("committed")); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	txn := db.NewTransaction(true)
	defer txn.Discard()
	for i := range 500 { // many pending writes outside the prefix
		if err := txn.Set(fmt.Appendf(nil, "a/%04d", i), []byte("pending")); err != nil {
			t.Fatal(err)
		}
	}
	for k, v := range map[string]string{"b/2": "pending", "b/3": "pending", "b": "pending", "b/9": "pending", "c/0": "pending"} {
		if err := txn.Set([]byte(k), []byte(v)); err != nil {
			t.Fatal(err)
		}
	}
	if err := txn.Delete([]byte("b/5")); err != nil {
		t.Fatal(err)
	}
	scan := func(prefix string, reverse bool, seek string) []string {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte(prefix), Reverse: reverse})
		defer it.Close()
		var got []string
		for it.Seek([]byte(seek)); it.Valid(); it.Next() {
			v, err := it.Item().ValueCopy(nil)
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, string(it.Item().Key())+"="+string(v))
		}
		return got
	}
	want := []string{"b/1=committed", "b/2=pending", "b/3=pending", "b/9=pending"}
	if got := scan("b/", false, ""); !slices.Equal(got, want) {
		t.Errorf("forward scan of b/: %v, want %v", got, want)
	}
	if got := scan("b/", false, "b/3"); !slices.Equal(got, want[2:]) {
		t.Errorf("scan of b/ from b/3: %v, want %v", got, want[2:])
	}
	rev := slices.Clone(want)
	slices.Reverse(rev)
	if got := scan("b/", true, "b/\xff"); !slices.Equal(got, rev) {
		t.Errorf("reverse scan of b/: %v, want %v", got, rev)
	}
	if got := scan("b/4", false, ""); len(got) != 0 {
		t.Errorf("scan of a prefix with no key: %v", got)
	}
	all := scan("", false, "")
	if len(all) != 508 || !strings.HasPrefix(all[0], "a/0000=pending") { // a/1, 500 a/NNNN, b, b/1, b/2, b/3, b/9, c/0, c/1
		t.Errorf("scan without a prefix: %d keys, first %q", len(all), all[0])
	}
}
