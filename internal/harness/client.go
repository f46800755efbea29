package harness

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// HTTPTimeout bounds every HTTP call of the helpers below (a write may wait
// for a leader election and a commit).
const HTTPTimeout = 15 * time.Second

// maxResponse bounds how much of an answer the helpers read.
const maxResponse = 64 << 20

// APIError is a non-2xx answer of the node's API: the status and the
// `{"error": {...}}` body API.md defines.
type APIError struct {
	Status  int
	Code    string
	Field   string
	Message string
	Body    string // the raw body, for answers that are not the error shape
}

func (e *APIError) Error() string {
	if e.Code == "" && e.Message == "" {
		return fmt.Sprintf("HTTP %d: %s", e.Status, e.Body)
	}
	s := fmt.Sprintf("HTTP %d %s", e.Status, e.Code)
	if e.Field != "" {
		s += " (field " + e.Field + ")"
	}
	return s + ": " + e.Message
}

// Status is GET /v1/status (the fields tests rely on).
type Status struct {
	Node       string     `json:"node"`
	Station    string     `json:"station"`
	Role       string     `json:"role"`
	Raft       RaftStatus `json:"raft"`
	Members    []Member   `json:"members"`
	Discovered []Peer     `json:"discovered"`
	Feed       FeedStatus `json:"feed"`
}

// Peer is a discovered peer (mDNS or static).
type Peer struct {
	Node    string `json:"node"`
	Station string `json:"station"`
	Address string `json:"address"`
	Source  string `json:"source"`
}

// RaftStatus is the raft part of Status.
type RaftStatus struct {
	State         string `json:"state"` // leader | follower | candidate | starting | shutdown
	Term          uint64 `json:"term"`
	Leader        string `json:"leader"`
	LeaderAddress string `json:"leader_address"`
	AppliedIndex  uint64 `json:"applied_index"`
	CommitIndex   uint64 `json:"commit_index"`
}

// Member is one raft server as a node sees it.
type Member struct {
	ID        string `json:"id"`
	Address   string `json:"address"`
	Suffrage  string `json:"suffrage"`
	Reachable bool   `json:"reachable"`
}

// FeedStatus is the change feed part of Status.
type FeedStatus struct {
	ClusterID string `json:"cluster_id"`
	Seq       uint64 `json:"seq"`
}

// Applicant is a case's applicant.
type Applicant struct {
	Kind     string `json:"kind"`
	Name     string `json:"name"`
	IDType   string `json:"id_type,omitempty"`
	IDNumber string `json:"id_number,omitempty"`
	Phone    string `json:"phone,omitempty"`
}

// CaseRequest is the body of POST /v1/cases. CreateCase fills an empty
// Channel ("window"), Actor ("clerk-e2e") and Applicant (a person).
type CaseRequest struct {
	ID        string    `json:"id,omitempty"`
	ItemCode  string    `json:"item_code"`
	Channel   string    `json:"channel"`
	Actor     string    `json:"actor"`
	Applicant Applicant `json:"applicant"`
}

// Case is a case as the API returns it (the fields tests rely on).
type Case struct {
	ID        string    `json:"id"`
	Station   string    `json:"station"`
	ItemCode  string    `json:"item_code"`
	Channel   string    `json:"channel"`
	Actor     string    `json:"actor"`
	Applicant Applicant `json:"applicant"`
	State     string    `json:"state"`
	CreatedAt time.Time `json:"created_at"`
	Events    []Event   `json:"events"`
}

// Event is one event of a case.
type Event struct {
	ID     string    `json:"id"`
	CaseID string    `json:"case_id"`
	Type   string    `json:"type"`
	Actor  string    `json:"actor"`
	At     time.Time `json:"at"`
	Node   string    `json:"node"`
}

// CreateCaseResponse is the 201/202 answer of POST /v1/cases.
type CreateCaseResponse struct {
	Case        Case   `json:"case"`
	Replication string `json:"replication"` // committed | pending
	Repeat      bool   `json:"repeat"`
}

// FeedPage is GET /v1/feed.
type FeedPage struct {
	ClusterID string       `json:"cluster_id"`
	Changes   []FeedChange `json:"changes"`
	Next      uint64       `json:"next"`
}

// FeedChange is one change of the feed.
type FeedChange struct {
	Seq   uint64          `json:"seq"`
	Index uint64          `json:"index"`
	Kind  string          `json:"kind"`
	Key   string          `json:"key"`
	Data  json.RawMessage `json:"data"`
}

// Do sends one request to the node's API and returns the status and body.
// body is nil (no body), []byte or string (sent as is), an io.Reader
// (streamed), or anything else (sent as JSON). err is only a transport
// failure; the status is the caller's to judge.
func (n *Node) Do(method, path string, body any) (status int, resp []byte, err error) {
	return n.do(context.Background(), method, path, body)
}

func (n *Node) do(ctx context.Context, method, path string, body any) (int, []byte, error) {
	var r io.Reader
	switch b := body.(type) {
	case nil:
	case []byte:
		r = bytes.NewReader(b)
	case string:
		r = bytes.NewReader([]byte(b))
	case io.Reader:
		r = b
	default:
		j, err := json.Marshal(b)
		if err != nil {
			return 0, nil, fmt.Errorf("%s %s: %w", method, path, err)
		}
		r = bytes.NewReader(j)
	}
	req, err := http.NewRequestWithContext(ctx, method, n.URL+path, r)
	if err != nil {
		return 0, nil, err
	}
	if r != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := n.client.Do(req)
	if err != nil {
		return 0, nil, fmt.Errorf("%s: %w", n.ID, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(io.LimitReader(res.Body, maxResponse))
	if err != nil {
		return res.StatusCode, b, fmt.Errorf("%s: %s %s: read answer: %w", n.ID, method, path, err)
	}
	return res.StatusCode, b, nil
}

// call does a request and decodes a 2xx answer into v (when not nil); any
// other status is returned as an *APIError.
func (n *Node) call(ctx context.Context, method, path string, body, v any) (int, error) {
	status, b, err := n.do(ctx, method, path, body)
	if err != nil {
		return status, err
	}
	if status < 200 || status > 299 {
		return status, apiError(status, b)
	}
	if v != nil {
		if err := json.Unmarshal(b, v); err != nil {
			return status, fmt.Errorf("%s: %s %s: answer is not the expected JSON: %v: %.300s", n.ID, method, path, err, b)
		}
	}
	return status, nil
}

func apiError(status int, body []byte) *APIError {
	e := &APIError{Status: status, Body: string(body)}
	var eb struct {
		Error struct {
			Code    string `json:"code"`
			Field   string `json:"field"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if json.Unmarshal(body, &eb) == nil {
		e.Code, e.Field, e.Message = eb.Error.Code, eb.Error.Field, eb.Error.Message
	}
	return e
}

// Get does GET path and decodes a 2xx answer into v; another status is an
// *APIError.
func (n *Node) Get(path string, v any) (int, error) {
	return n.call(context.Background(), http.MethodGet, path, nil, v)
}

// Post does POST path with body (see Do) and decodes a 2xx answer into v;
// another status is an *APIError.
func (n *Node) Post(path string, body, v any) (int, error) {
	return n.call(context.Background(), http.MethodPost, path, body, v)
}

// Put does PUT path with body (see Do) and decodes a 2xx answer into v;
// another status is an *APIError.
func (n *Node) Put(path string, body, v any) (int, error) {
	return n.call(context.Background(), http.MethodPut, path, body, v)
}

// Status returns GET /v1/status.
func (n *Node) Status() (Status, error) {
	return n.statusTimeout(HTTPTimeout)
}

func (n *Node) statusTimeout(d time.Duration) (Status, error) {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	var st Status
	_, err := n.call(ctx, http.MethodGet, "/v1/status", nil, &st)
	return st, err
}

// PutItem creates or updates a station-local item with the given name and
// the 公共服务 type: the least a case needs.
func (n *Node) PutItem(code, name string) error {
	body := map[string]any{"name": name, "type": map[string]string{"code": "20", "name": "公共服务"}}
	_, err := n.Put("/v1/items/"+url.PathEscape(code), body, nil)
	return err
}

// CreateCase posts a new case and returns its id and the HTTP status (201
// committed, 202 pending). A non-2xx answer is an *APIError.
func (n *Node) CreateCase(c CaseRequest) (id string, status int, err error) {
	if c.Channel == "" {
		c.Channel = "window"
	}
	if c.Actor == "" {
		c.Actor = "clerk-e2e"
	}
	if c.Applicant.Kind == "" {
		c.Applicant.Kind = "person"
	}
	if c.Applicant.Name == "" {
		c.Applicant.Name = "张三"
	}
	var res CreateCaseResponse
	status, err = n.Post("/v1/cases", c, &res)
	if err != nil {
		return "", status, err
	}
	if res.Case.ID == "" {
		return "", status, fmt.Errorf("%s: POST /v1/cases: %d with no case id", n.ID, status)
	}
	return res.Case.ID, status, nil
}

// GetCase returns GET /v1/cases/{id}; a missing case is an *APIError 404.
func (n *Node) GetCase(id string) (Case, error) {
	var c Case
	_, err := n.Get("/v1/cases/"+url.PathEscape(id), &c)
	return c, err
}

// ListCases returns every case, following the pages of GET /v1/cases.
func (n *Node) ListCases() ([]Case, error) {
	var all []Case
	after := ""
	for range 10000 {
		var page struct {
			Cases []Case `json:"cases"`
			Next  string `json:"next"`
		}
		q := url.Values{"limit": {"1000"}}
		if after != "" {
			q.Set("after", after)
		}
		if _, err := n.Get("/v1/cases?"+q.Encode(), &page); err != nil {
			return nil, err
		}
		all = append(all, page.Cases...)
		if page.Next == "" || len(page.Cases) == 0 {
			return all, nil
		}
		after = page.Next
	}
	return nil, fmt.Errorf("%s: GET /v1/cases: too many pages", n.ID)
}

// Feed returns one page of GET /v1/feed.
func (n *Node) Feed(since uint64, limit int) (FeedPage, error) {
	var p FeedPage
	q := url.Values{"since": {strconv.FormatUint(since, 10)}}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	_, err := n.Get("/v1/feed?"+q.Encode(), &p)
	return p, err
}

// FeedAll returns the whole change feed from seq 1, following pages, and
// the cluster id.
func (n *Node) FeedAll() (changes []FeedChange, clusterID string, err error) {
	var since uint64
	for range 100000 {
		p, err := n.Feed(since, 1000)
		if err != nil {
			return nil, "", err
		}
		clusterID = p.ClusterID
		changes = append(changes, p.Changes...)
		if len(p.Changes) == 0 || p.Next <= since {
			return changes, clusterID, nil
		}
		since = p.Next
	}
	return nil, "", fmt.Errorf("%s: GET /v1/feed: too many pages", n.ID)
}
