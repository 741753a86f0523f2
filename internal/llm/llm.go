// Package llm is the platform's client for OpenAI-compatible chat
// completion endpoints (OpenAI, Azure-style gateways, vLLM, Ollama, LM
// Studio). Agents use it for optional assistance only: every caller must
// work without it, so the client reports failures as errors and never
// retries on its own.
package llm

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"time"

	openai "github.com/sashabaranov/go-openai"
)

// Environment variables read by ConfigFromEnv.
const (
	EnvBaseURL = "OPENAI_BASE_URL"
	EnvAPIKey  = "OPENAI_API_KEY"
	EnvModel   = "OPENAI_MODEL"
)

// DefaultModel is used when neither the caller nor OPENAI_MODEL names one.
const DefaultModel = "gpt-4o-mini"

// ErrRefused means the model declined to answer (a refusal message or a
// content-filter stop); callers fall back to their own logic.
var ErrRefused = errors.New("llm: the model refused to answer")

// ErrNotConfigured means no endpoint or key is available.
var ErrNotConfigured = errors.New("llm: set OPENAI_API_KEY (and OPENAI_BASE_URL for a non-OpenAI endpoint)")

// Config selects the endpoint. The API key is never printed: String and
// errors redact it.
type Config struct {
	BaseURL string
	APIKey  string
	Model   string
	// Timeout bounds one request; zero means 60 s.
	Timeout time.Duration
	// MaxTokens caps the answer; zero means 2048.
	MaxTokens int
	// HTTPClient overrides the transport (tests); nil uses a default.
	HTTPClient *http.Client
}

// ConfigFromEnv reads OPENAI_BASE_URL, OPENAI_API_KEY and OPENAI_MODEL.
// model, when not empty, wins over OPENAI_MODEL.
func ConfigFromEnv(model string) Config {
	c := Config{
		BaseURL: strings.TrimSpace(os.Getenv(EnvBaseURL)),
		APIKey:  strings.TrimSpace(os.Getenv(EnvAPIKey)),
		Model:   strings.TrimSpace(os.Getenv(EnvModel)),
	}
	if model != "" {
		c.Model = model
	}
	return c
}

// String describes the configuration without the key.
func (c Config) String() string {
	key := "unset"
	if c.APIKey != "" {
		key = "set"
	}
	base := c.BaseURL
	if base == "" {
		base = "https://api.openai.com/v1"
	}
	return fmt.Sprintf("llm(base=%s model=%s key=%s)", base, c.model(), key)
}

func (c Config) model() string {
	if c.Model == "" {
		return DefaultModel
	}
	return c.Model
}

// Client sends chat completions.
type Client struct {
	cfg Config
	api *openai.Client
}

// New builds a client. A base URL without a key is allowed because local
// servers (Ollama, vLLM) often need none.
func New(cfg Config) (*Client, error) {
	if cfg.APIKey == "" && cfg.BaseURL == "" {
		return nil, ErrNotConfigured
	}
	oc := openai.DefaultConfig(cfg.APIKey)
	if cfg.BaseURL != "" {
		oc.BaseURL = strings.TrimRight(cfg.BaseURL, "/")
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 60 * time.Second
	}
	if cfg.MaxTokens <= 0 {
		cfg.MaxTokens = 2048
	}
	if cfg.HTTPClient != nil {
		oc.HTTPClient = cfg.HTTPClient
	} else {
		oc.HTTPClient = &http.Client{Timeout: cfg.Timeout}
	}
	return &Client{cfg: cfg, api: openai.NewClientWithConfig(oc)}, nil
}

// Config returns the client's configuration (the key included: callers
// must not print it; use Config.String).
func (c *Client) Config() Config { return c.cfg }

// CompleteJSON sends one system and one user message, asks for a JSON
// object answer at temperature 0 and returns the answer text unparsed:
// validating it is the caller's job, because only the caller knows which
// values are legal.
func (c *Client) CompleteJSON(ctx context.Context, system, user string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	resp, err := c.api.CreateChatCompletion(ctx, openai.ChatCompletionRequest{
		Model: c.cfg.model(),
		Messages: []openai.ChatCompletionMessage{
			{Role: openai.ChatMessageRoleSystem, Content: system},
			{Role: openai.ChatMessageRoleUser, Content: user},
		},
		Temperature:    0,
		MaxTokens:      c.cfg.MaxTokens,
		ResponseFormat: &openai.ChatCompletionResponseFormat{Type: openai.ChatCompletionResponseFormatTypeJSONObject},
	})
	if err != nil {
		if ctx.Err() != nil {
			return "", ctx.Err()
		}
		return "", c.redact(err)
	}
	if len(resp.Choices) == 0 {
		return "", errors.New("llm: the answer has no choices")
	}
	ch := resp.Choices[0]
	if ch.Message.Refusal != "" || ch.FinishReason == openai.FinishReasonContentFilter {
		return "", ErrRefused
	}
	if strings.TrimSpace(ch.Message.Content) == "" {
		return "", errors.New("llm: the answer is empty")
	}
	return ch.Message.Content, nil
}

// redact removes the API key from an error message; some servers echo the
// Authorization header back in their error bodies.
func (c *Client) redact(err error) error {
	msg := err.Error()
	if c.cfg.APIKey != "" {
		msg = strings.ReplaceAll(msg, c.cfg.APIKey, "[redacted]")
	}
	return errors.New("llm: " + msg)
}
