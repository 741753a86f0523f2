package resolution

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/agentetl/agentetl/internal/model"
)

// ErrorInput is one line of `agentetl diagnose` input: a PipelineError in
// the seed's JSON vocabulary plus optional evidence. Only message is
// required.
type ErrorInput struct {
	ID          string             `json:"id"`
	PipelineID  string             `json:"pipelineId"`
	ExecutionID string             `json:"executionId"`
	ErrorType   string             `json:"errorType"`
	Message     *string            `json:"message"`
	SQLState    string             `json:"sqlstate"`
	Component   string             `json:"component"`
	StackTrace  string             `json:"stackTrace"`
	Context     model.ErrorContext `json:"context"`
}

// LineError is the output for an input line that could not be diagnosed.
type LineError struct {
	Line  int    `json:"line"`
	Error string `json:"error"`
}

// DiagnoseLines reads ErrorInput JSON lines from r and writes one JSON line
// to w for each non-blank input line: a Diagnosis, or a LineError for a line
// that is not a valid error object (the same message also goes to errw).
// Processing continues after a bad line. It returns how many lines were
// diagnosed and how many failed.
func DiagnoseLines(ctx context.Context, a *Agent, r io.Reader, w, errw io.Writer) (ok, failed int, err error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 16<<20)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	line := 0
	for sc.Scan() {
		line++
		raw := bytes.TrimSpace(sc.Bytes())
		if len(raw) == 0 {
			continue
		}
		d, lerr := diagnoseLine(ctx, a, raw)
		if lerr != nil {
			failed++
			fmt.Fprintf(errw, "diagnose: line %d: %v\n", line, lerr)
			if err := enc.Encode(LineError{Line: line, Error: lerr.Error()}); err != nil {
				return ok, failed, err
			}
			continue
		}
		ok++
		if err := enc.Encode(d); err != nil {
			return ok, failed, err
		}
	}
	if err := sc.Err(); err != nil {
		return ok, failed, fmt.Errorf("reading input: %w", err)
	}
	return ok, failed, nil
}

func diagnoseLine(ctx context.Context, a *Agent, raw []byte) (Diagnosis, error) {
	var in ErrorInput
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&in); err != nil {
		var syn *json.SyntaxError
		var ute *json.UnmarshalTypeError
		switch {
		case errors.As(err, &syn):
			return Diagnosis{}, fmt.Errorf("invalid JSON at byte %d: %v", syn.Offset, err)
		case errors.As(err, &ute):
			return Diagnosis{}, fmt.Errorf("field %q must be a %s, not a JSON %s", ute.Field, ute.Type, ute.Value)
		default:
			return Diagnosis{}, fmt.Errorf("invalid JSON: %v", err)
		}
	}
	if dec.More() {
		return Diagnosis{}, errors.New("invalid JSON: more than one value on the line")
	}
	if in.Message == nil || strings.TrimSpace(*in.Message) == "" {
		return Diagnosis{}, errors.New(`"message" is required and must be a non-empty string`)
	}
	pe := model.PipelineError{ID: in.ID, PipelineID: in.PipelineID, ExecutionID: in.ExecutionID, ErrorType: in.ErrorType,
		Message: *in.Message, StackTrace: in.StackTrace, Context: in.Context}
	if in.Component != "" && pe.Context.SourceLocation == "" {
		pe.Context.SourceLocation = in.Component
	}
	rec, err := a.CaptureError(ctx, pe, Hints{ErrorType: in.ErrorType, SQLState: in.SQLState})
	if err != nil {
		return Diagnosis{}, err
	}
	rec.Component = in.Component
	return a.DiagnoseError(ctx, rec)
}
