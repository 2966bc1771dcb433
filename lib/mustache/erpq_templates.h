/*
 * erpq_templates.h - the message template store over templates/.
 *
 * Layout (one directory, given to erpq_templates_load()):
 *   email/<name>.<locale>.subject.mustache   subject line      (required)
 *   email/<name>.<locale>.txt.mustache       plain-text body   (required)
 *   email/<name>.<locale>.html.mustache      HTML body         (optional)
 *   sms/<name>.<locale>.txt.mustache         SMS text
 *   partials/<name>.mustache                 partial for every locale
 *   partials/<name>.<locale>.mustache        partial for one locale
 * <name> is [A-Za-z0-9_-]+ ("fee-reminder"); <locale> is a BCP 47 style
 * tag of [A-Za-z0-9] subtags joined by '-' ("en", "hi", "hi-IN"), matched
 * without regard to case. Files not ending in ".mustache" are ignored
 * (README.md); a ".mustache" file whose name does not fit the layout fails
 * the load, so a typo ("txt" spelt "text") cannot go unnoticed.
 *
 * States. erpq_templates_load() reads and compiles every file once; the
 * store is immutable afterwards until erpq_templates_free(). Lookups and
 * renders take no lock and touch no disk, so any number of threads may
 * render from one store at once.
 *
 * Locale fallback. A request for "hi-IN" tries hi-IN, then hi, then en
 * (each time dropping the last subtag, finally "en"; "_" counts as "-",
 * so "hi_IN" works too; NULL or "" means en). The first locale that has a
 * complete set of the template wins, and that set is used whole:
 *  - an email set is complete when it has subject AND txt. An incomplete
 *    set (say hi-IN with only an html file) is skipped as a whole, so the
 *    request falls back to the next locale's complete set; parts are never
 *    mixed across locales. The loader reports every skipped set through the
 *    warn callback (it is a translation left half done).
 *  - html is optional within a complete set: a hi set without html renders
 *    a Hindi text-only mail (html NULL), not English HTML.
 *  - partials resolve along the chain of the locale of the set that was
 *    chosen (not the requested one): <name>.hi-IN, <name>.hi, <name>.en,
 *    then <name> for a hi-IN set, so an English mail never gets a Hindi
 *    footer.
 *
 * Load-time checks (the load fails, with the file named, for each):
 *  - a template that does not parse: "DIR/email/x.hi.txt.mustache:
 *    unclosed section 'payUrl' opened at line 7, column 1";
 *  - a template without a complete "en" set: every lookup ends at en;
 *  - a partial that a set refers to (directly or through other partials)
 *    and that does not resolve along the set's chain;
 *  - a locale set using a top-level variable that the en set of the same
 *    template does not use (a typo in a translation; callers send the same
 *    variables whatever the locale).
 *
 * Rendering is strict (erpq_mustache.h): a variable that resolves to
 * nothing fails the render with -EINVAL, and the message names every
 * missing variable of all parts at once. Pass null for an optional value
 * such as payUrl: null is not missing. Subject, txt and SMS render in TEXT
 * mode (nothing escaped), html in HTML mode (& < > " ' escaped). Subject and
 * SMS texts are trimmed of leading and trailing whitespace after rendering
 * (editors end files with a newline), and every CR or LF left inside a
 * subject becomes a space (a value with a line break must not start a new
 * mail header).
 *
 * Ownership: the caller owns the store and frees it; rendered texts are
 * malloc'd strings the caller frees; names and locales returned by the
 * lookup functions belong to the store.
 */
#ifndef ERPQ_TEMPLATES_H
#define ERPQ_TEMPLATES_H

#include <jansson.h>
#include <stddef.h>

typedef struct erpq_templates erpq_templates;

/* Receives one sentence about something the load accepted but a person
 * should look at (an incomplete locale set that is ignored). */
typedef void (*erpq_templates_warn_fn)(void *ud, const char *msg);

/* Loads every template under dir (see the layout above). warn may be NULL.
 * -ENOENT when dir cannot be read, -EINVAL for a check that fails, -ENOMEM. */
int erpq_templates_load(const char *dir, erpq_templates_warn_fn warn, void *warn_ud,
                        erpq_templates **out, char *err, size_t errlen);
void erpq_templates_free(erpq_templates *s);

/* Renders email name for locale with vars (a JSON object). On success
 * *subject and *text are set and, when html is not NULL, *html is set to
 * the HTML body or NULL when the chosen set has none. On failure all are
 * NULL: -ENOENT (no such template), -EINVAL (vars not an object, or missing
 * variables: all of them named in err), -ELOOP, -ENOMEM. Thread-safe. */
int erpq_templates_render_email(const erpq_templates *s, const char *name, const char *locale,
                                const json_t *vars, char **subject, char **text, char **html,
                                char *err, size_t errlen);
/* Renders SMS name for locale; *text as above. Thread-safe. */
int erpq_templates_render_sms(const erpq_templates *s, const char *name, const char *locale,
                              const json_t *vars, char **text, char *err, size_t errlen);

/* The locale whose set a render of name for locale uses ("hi" for a
 * request of "hi-IN" without a hi-IN set), or NULL for no such template. */
const char *erpq_templates_email_locale(const erpq_templates *s, const char *name,
                                        const char *locale);
const char *erpq_templates_sms_locale(const erpq_templates *s, const char *name,
                                      const char *locale);

/* The top-level variables the chosen set of an email or SMS template uses
 * (all parts, through its partials), as a new array of strings in order of
 * first appearance (erpq_mustache_names). -ENOENT, -ENOMEM. */
int erpq_templates_email_vars(const erpq_templates *s, const char *name, const char *locale,
                              json_t **names);
int erpq_templates_sms_vars(const erpq_templates *s, const char *name, const char *locale,
                            json_t **names);

#endif
