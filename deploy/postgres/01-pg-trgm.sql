-- Trigram indexes back span.content searches (the migrations also create it if allowed).
CREATE EXTENSION IF NOT EXISTS pg_trgm;
