package saver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/olivere/elastic/v7"
)

// indexTemplates are the templates the saver installs: name suffix ->
// composable index template body.
func (c *ElasticsearchConfig) indexTemplates() map[string]map[string]any {
	settings := map[string]any{
		"number_of_shards":   c.Shards,
		"number_of_replicas": c.Replicas,
	}
	if c.RefreshInterval != "" {
		settings["refresh_interval"] = c.RefreshInterval
	}
	tagsTemplate := []any{map[string]any{"tags": map[string]any{
		"path_match": "tags.*", "match_mapping_type": "string", "mapping": map[string]any{"type": "keyword"},
	}}}
	common := map[string]any{
		"endpoint": map[string]any{"type": "keyword"},
		"name":     map[string]any{"type": "keyword"},
		"series":   map[string]any{"type": "keyword"},
		"tags":     map[string]any{"type": "object", "dynamic": true},
	}
	raw := map[string]any{
		"value":     map[string]any{"type": "double"},
		"timestamp": map[string]any{"type": "date", "format": "epoch_second"},
		"step":      map[string]any{"type": "long"},
		"type":      map[string]any{"type": "keyword"},
	}
	roll := map[string]any{
		"window_start": map[string]any{"type": "date", "format": "epoch_second"},
		"window":       map[string]any{"type": "keyword"},
		"min":          map[string]any{"type": "double"},
		"max":          map[string]any{"type": "double"},
		"sum":          map[string]any{"type": "double"},
		"avg":          map[string]any{"type": "double"},
		"count":        map[string]any{"type": "long"},
	}
	for k, v := range common {
		raw[k], roll[k] = v, v
	}
	mk := func(pattern string, props map[string]any) map[string]any {
		return map[string]any{
			"index_patterns": []string{pattern},
			"priority":       200,
			"template": map[string]any{
				"settings": settings,
				"mappings": map[string]any{
					"dynamic": "strict",
					// Elasticsearch runs date detection before dynamic
					// templates: a first tag value such as "2026-01-02" would
					// map that tag as a date and refuse every later value.
					"date_detection":    false,
					"numeric_detection": false,
					"dynamic_templates": tagsTemplate,
					"properties":        props,
				},
			},
			"_meta": map[string]any{"managed_by": "falconet-saver"},
		}
	}
	return map[string]map[string]any{
		c.TemplateName:             mk(IndexPrefix+"*", raw),
		c.TemplateName + "-rollup": mk(RollupPrefix+"*", roll),
	}
}

// InstallTemplates puts the saver's index templates (raw and rollup
// indices). It uses composable templates (_index_template, ES 7.8+).
func InstallTemplates(ctx context.Context, es *elastic.Client, cfg *ElasticsearchConfig) error {
	for name, body := range cfg.indexTemplates() {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		if _, err := es.IndexPutIndexTemplate(name).BodyString(string(b)).Do(ctx); err != nil {
			return fmt.Errorf("saver: install index template %s: %w", name, err)
		}
	}
	return nil
}

// installTemplatesRetrying installs the templates before any document is
// written (a document indexed first would get dynamic mappings), waiting
// for Elasticsearch as long as ctx allows. A 4xx answer is a configuration
// problem and ends Run.
func (s *Saver) installTemplatesRetrying(ctx context.Context) error {
	for attempt := 1; ; attempt++ {
		rctx, cancel := context.WithTimeout(ctx, s.cfg.Elasticsearch.RequestTimeout.D())
		err := InstallTemplates(rctx, s.es, &s.cfg.Elasticsearch)
		cancel()
		if err == nil {
			s.writer.setOK()
			s.logger.Info("index templates installed", "name", s.cfg.Elasticsearch.TemplateName)
			return nil
		}
		s.writer.setFailing(err) // /healthz reports it after a minute
		if why := explainESError(err, &s.cfg.Elasticsearch); why != "" {
			// Credentials or TLS: /healthz says so at once (writer.health),
			// setFailing logged it, and the saver keeps trying (a key may be
			// created or a CA fixed meanwhile).
			if attempt%10 == 0 {
				s.logger.Error("elasticsearch still refuses the saver; retrying", "why", why, "err", err, "attempt", attempt)
			}
			if !retrySleeper(s.cfg.Elasticsearch.RetryInitial.D(), min(s.cfg.Elasticsearch.RetryMax.D(), 10*time.Second))(ctx, attempt) {
				return nil
			}
			continue
		}
		var ee *elastic.Error
		if errors.As(err, &ee) && ee.Status >= 400 && ee.Status < 500 && ee.Status != http.StatusTooManyRequests {
			return err
		}
		if attempt == 1 || attempt%10 == 0 {
			s.logger.Warn("cannot install index templates yet, retrying", "err", err)
		}
		if !retrySleeper(s.cfg.Elasticsearch.RetryInitial.D(), min(s.cfg.Elasticsearch.RetryMax.D(), 10*time.Second))(ctx, attempt) {
			return nil
		}
	}
}
