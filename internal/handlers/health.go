package handlers

import (
	"context"
	"maps"
	"net/http"
	"time"

	"github.com/rs/zerolog/hlog"
)

func handleHealthz() http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	}
}

func handleReadyz(ready func(ctx context.Context) error, detail func() map[string]string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), time.Second)
		defer cancel()
		if err := ready(ctx); err != nil {
			hlog.FromRequest(r).Warn().Err(err).Msg("not ready")
			writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "not ready"})
			return
		}
		answer := map[string]string{}
		if detail != nil {
			maps.Copy(answer, detail())
		}
		answer["status"] = "ready"
		writeJSON(w, http.StatusOK, answer)
	}
}
