/*
 * lexicon: English word lists for the extractive note generator (private to
 * src/notes). Lists of single words are space-separated strings searched
 * whole-word; NULL-terminated arrays hold multi-word cues.
 */
#ifndef DIARIST_NOTES_LEXICON_H
#define DIARIST_NOTES_LEXICON_H

extern const char *const STOPWORDS;
extern const char *const WEEKDAYS[];  /* sunday .. saturday */
extern const char *const MONTHS[];    /* january .. december */
extern const char *const PLACE_PREPS; /* words that make a following name a place */
extern const char *const MOTION;      /* movement words before "to"/"from" a place */
extern const char *const EVENT_CUES;
extern const char *const REFLECTION_CUES[];
extern const char *const ACTION_CUES[];
extern const char *const INTENSIFIERS;

/* Whether `part` is one or more whole words of the space-separated `whole`. */
int word_part(const char *part, const char *whole);
/* Whether the single word w is in a space-separated list. */
int in_list(const char *list, const char *w);
/* Index of w in a NULL-terminated list, or -1. */
int list_index(const char *const *list, const char *w);
/* Mood weight of a word, -1 (very negative) .. 1; 0 when not a mood word. */
float lexicon_weight(const char *w);
/* "not", "never", "...n't" and the like. */
int is_negator(const char *w);

#endif
