/* dict.h - the fuzz dictionaries, generated from the tables of the model-file parser and of
 * the command line (fuzz/dict.c). */
#ifndef DS_FUZZ_DICT_H
#define DS_FUZZ_DICT_H

/* The names of the dictionaries: fuzz/dict/<name>.dict. */
#define FUZZ_DICTS(X) X(model) X(cli)

/* The text of fuzz/dict/<name>.dict as generated now (malloc'd), or NULL if out of memory or
 * name is not one of FUZZ_DICTS. */
char *fuzz_dict_text(const char *name);

#endif
