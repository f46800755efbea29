package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"

	"github.com/stationsync/stationsync/daemon"
)

// cmdToken: `stationsync token --station ID [--ttl 24h]` at the center.
func cmdToken(args []string, out io.Writer) error {
	fs := newFlags("token")
	api := apiFlag(fs)
	station := fs.String("station", "", "the station the new PC belongs to")
	ttl := fs.String("ttl", "24h", "how long the token can be used (1m to 720h)")
	if _, err := parse(fs, args, 0); err != nil {
		return err
	}
	if *station == "" {
		return errors.New("token: --station is required")
	}
	body, _ := json.Marshal(map[string]string{"station": *station, "ttl": *ttl})
	c := &http.Client{Timeout: 15 * time.Second}
	resp, err := c.Post(*api+"/v1/tokens", "application/json", bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("token: is the center running? %w", err)
	}
	defer resp.Body.Close()
	var tok struct {
		Token   string    `json:"token"`
		Expires time.Time `json:"expires"`
	}
	if resp.StatusCode != http.StatusCreated {
		return printAnswer(io.Discard, resp, "token: ")
	}
	if err := json.NewDecoder(resp.Body).Decode(&tok); err != nil {
		return fmt.Errorf("token: %w", err)
	}
	fmt.Fprintf(out, "%s\n", tok.Token)
	fmt.Fprintf(os.Stderr, "one-time token for a PC of station %s, valid until %s:\n  stationsync enroll --center <this center's address>:4610 --token %s --node <pc id>\n",
		*station, tok.Expires.Local().Format("2006-01-02 15:04"), tok.Token)
	return nil
}

// cmdEnroll: `stationsync enroll --center ADDR --token T [--node ID] [--out DIR]`.
func cmdEnroll(args []string, out io.Writer) error {
	fs := newFlags("enroll")
	center := fs.String("center", "", "the district center's QUIC address (host:4610)")
	token := fs.String("token", "", "the one-time token from `stationsync token` at the center")
	host, _ := os.Hostname()
	node := fs.String("node", host, "this PC's node id (unique in the station)")
	outDir := fs.String("out", ".", "folder for ca.crt, node.crt, node.key and station.yaml")
	expect := fs.Int("expect", 1, "expect: in the written config: the station's number of PCs")
	if _, err := parse(fs, args, 0); err != nil {
		return err
	}
	if *center == "" || *token == "" {
		return errors.New("enroll: --center and --token are required")
	}
	err := daemon.Enroll(context.Background(), daemon.EnrollOptions{Center: *center, Token: *token, Node: *node, OutDir: *outDir, Expect: *expect, Out: out})
	if err != nil {
		return fmt.Errorf("enroll: %w", err)
	}
	return nil
}

// cmdBackup: `stationsync backup --out FILE [--api URL]`.
func cmdBackup(args []string, out io.Writer) error {
	fs := newFlags("backup")
	api := apiFlag(fs)
	file := fs.String("out", "", "the backup file to write")
	if _, err := parse(fs, args, 0); err != nil {
		return err
	}
	if *file == "" {
		return errors.New("backup: --out FILE is required")
	}
	c := &http.Client{Timeout: 30 * time.Minute}
	resp, err := c.Get(*api + "/v1/backup")
	if err != nil {
		return fmt.Errorf("backup: is the node running? %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return printAnswer(io.Discard, resp, "backup: ")
	}
	tmp := *file + ".partial"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	n, err := io.Copy(f, resp.Body)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("backup: %w", err)
	}
	if err := os.Rename(tmp, *file); err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	fmt.Fprintf(out, "backup written to %s (%d bytes, sealed with this node's key: keep the key file too)\n", *file, n)
	return nil
}

// cmdRestore: `stationsync restore --config FILE BACKUP`.
func cmdRestore(args []string, out io.Writer) error {
	fs := newFlags("restore")
	cfgPath := fs.String("config", "", "the node's config file")
	rest, err := parse(fs, args, 1)
	if err != nil {
		return err
	}
	if *cfgPath == "" {
		return errors.New("restore: --config FILE is required")
	}
	cfg, err := daemon.LoadConfig(*cfgPath, os.Environ(), nil)
	if err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	h, aside, err := daemon.RestoreNode(cfg, rest[0])
	if err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	fmt.Fprintf(out, "restored the backup of node %s (station %s, taken %s, raft index %d) into %s\n", h.Node, h.Station, h.Created.Local().Format("2006-01-02 15:04"), h.Index, cfg.DataDir)
	if aside != "" {
		fmt.Fprintf(out, "the previous data folder is kept at %s (delete it once the node runs)\n", aside)
	}
	fmt.Fprintln(out, "start the node: it rejoins its station and catches up")
	return nil
}
