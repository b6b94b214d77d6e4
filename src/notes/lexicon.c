/*
 * The offline generator's English word lists and the small lookups over
 * them, kept apart from extractive.c so the method reads without the data.
 */
#include "notes/lexicon.h"

#include <string.h>

/* Lists of single words are space-separated strings, searched whole-word. */
const char *const STOPWORDS =
    "a about above after again against all also am an and any are aren't as at be because been "
    "before being below between both but by can can't cannot could couldn't did didn't do does "
    "doesn't doing don't down during each even ever every few for from further get gets getting "
    "got had hadn't has hasn't have haven't having he he'd he'll her here hers herself him "
    "himself his how i i'd i'll i'm i've if in into is isn't it it'd it'll its itself just let "
    "like lot lots me more most much must my myself no nor not now of off oh ok okay on once "
    "only or other our ours ourselves out over own really same she she'd she'll should so some "
    "such than that the their theirs them themselves then there these they they'd they'll "
    "they're they've thing things this those through to too under until up us very was wasn't "
    "we we'd we'll we're we've were weren't what when where which while who whom why will with "
    "won't would wouldn't yeah yes you you'd you'll you're you've your yours yourself well still "
    "maybe actually pretty quite something anything everything nothing someone anyone everyone "
    "one two went go going gone make made want wanted need needed think thought feel felt know "
    "knew said say told tell today tonight yesterday tomorrow morning evening afternoon night "
    "day week time bit kind way back around near next last first though although since another "
    "many hi hello again twice finally small big new old little long early late better good "
    "forget remember able sure whole almost already always often";

const char *const WEEKDAYS[] = {"sunday",   "monday", "tuesday",  "wednesday",
                                "thursday", "friday", "saturday", NULL};
const char *const MONTHS[] = {"january",  "february", "march",  "april",     "may",
                              "june",     "july",     "august", "september", "october",
                              "november", "december", NULL};

/* Words that make a following name a place ("in Lisbon", "near Zurich"). */
const char *const PLACE_PREPS =
    "in at near into around through across towards toward outside inside via";
/* "to" and "from" name a place only after movement ("went to Porto", but
 * "talked to Tom", "a letter from Anna"). */
const char *const MOTION =
    "went go goes going gone drove drive driving flew fly flying walked walk travelled traveled "
    "travel moved move moving came come coming trip back way headed heading returned return ran "
    "rode cycled journey train flight bus home road commute hiked";

const char *const EVENT_CUES =
    "went met visited had called finished started bought saw talked today yesterday tonight "
    "after then did took walked drove ate cooked watched played worked spent came arrived left "
    "told asked wrote won received fought argued cleaned ran celebrated joined helped flew "
    "tried got made lost missed read stayed moved";

/* Reflective openings, as lowercase word sequences ("i think"). */
const char *const REFLECTION_CUES[] = {
    "i think",       "i feel",    "i felt",       "i realised",    "i realized", "i wonder",
    "i learned",     "i learnt",  "i'm grateful", "i am grateful", "i should",   "maybe i",
    "it made me",    "i guess",   "i hope",       "i wish",        "i noticed",  "i'm thankful",
    "i am thankful", "i believe", "i'm proud",    "i am proud",    NULL};

/* Intentions; the task is what follows the cue. */
const char *const ACTION_CUES[] = {
    "don't forget to", "don't forget", "remember to", "need to", "needs to",
    "have to",         "has to",       "must",        "should",  "going to",
    "plan to",         "planning to",  "todo",        "to-do",   NULL};

/* Mood words by weight, from -1 (very negative) to 1 (very positive). */
static const struct {
    float weight;
    const char *words;
} LEXICON[] = {
    {.9f, "joy joyful delighted thrilled wonderful amazing fantastic happiest"},
    {.8f, "happy happier excited grateful thankful loved awesome brilliant perfect"},
    {.7f, "exciting blessed proud love lovely enjoyed beautiful accomplished cheerful inspired "
          "celebrate celebrated"},
    {.6f, "glad relaxed relaxing peaceful great fun enjoy enjoying best hopeful optimistic "
          "satisfied energized energetic refreshed laughed pleased motivated confident "
          "successful success"},
    {.5f, "calm content productive rested laugh smile smiled relieved cozy hug"},
    {.4f, "nice good comfortable thanks"},
    {.3f, "better sunny"},
    {.2f, "fine"},
    {-.2f, "deadline"},
    {-.3f, "problem problems sorry"},
    {-.4f, "alone bored boring difficult rough confused mess"},
    {-.5f, "annoyed irritated worry nervous tired sick ill bad embarrassed jealous argued "
           "argument cry struggle struggled struggling tense broken headache unfair rude annoying"},
    {-.6f, "mad frustrating worried afraid fear stress drained hurt pain painful disappointing "
           "worse guilty fight fought cried crying failed regret shouted yelled"},
    {-.7f, "sad unhappy upset frustrated anxious anxiety scared stressed stressful exhausted "
           "lonely disappointed failure ashamed dread exhausting"},
    {-.8f, "angry overwhelmed awful terrible horrible worst hate hated panic grief"},
    {-.9f, "furious miserable depressed hopeless"},
};

const char *const INTENSIFIERS = "very really so extremely incredibly super totally truly";

/* Whether `part` is one or more whole words of the space-separated `whole`. */
int word_part(const char *part, const char *whole) {
    size_t n = strlen(part);
    if (!n) return 0;
    for (const char *p = strstr(whole, part); p; p = strstr(p + 1, part))
        if ((p == whole || p[-1] == ' ') && (p[n] == 0 || p[n] == ' ')) return 1;
    return 0;
}

/* Whether w is one of the words of a list. */
int in_list(const char *list, const char *w) {
    return !strchr(w, ' ') && word_part(w, list);
}

int list_index(const char *const *list, const char *w) {
    for (int i = 0; list[i]; i++)
        if (!strcmp(list[i], w)) return i;
    return -1;
}

float lexicon_weight(const char *w) {
    for (size_t i = 0; i < sizeof LEXICON / sizeof LEXICON[0]; i++)
        if (in_list(LEXICON[i].words, w)) return LEXICON[i].weight;
    return 0;
}

int is_negator(const char *w) {
    size_t n = strlen(w);
    return in_list("not no never hardly barely without", w) || (n > 3 && !strcmp(w + n - 3, "n't"));
}
