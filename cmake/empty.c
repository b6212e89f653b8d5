/* Placeholder compiled into a module library that has no sources yet. */
extern int tern_empty_module_placeholder;
int tern_empty_module_placeholder;
