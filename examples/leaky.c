/* A small program with two real leaks, for trying leaktrace:
 *   leaktrace run -- ./leaky
 * It parses a few "requests"; the parser forgets to free one of its buffers, and the
 * program's config is loaded twice without the first copy being released. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct request {
    char *path;
    char *body;
};

static char *copy_text(const char *text)
{
    size_t n = strlen(text) + 1;
    char *out = malloc(n);
    memcpy(out, text, n);
    return out;
}

static struct request *parse_request(const char *line)
{
    struct request *req = calloc(1, sizeof *req);
    const char *space = strchr(line, ' ');
    req->path = copy_text(space ? space + 1 : line);
    req->body = copy_text("{}");
    return req;
}

static void release_request(struct request *req)
{
    free(req->path); /* bug: req->body is never freed */
    free(req);
}

static char *config;

static void load_config(void)
{
    config = copy_text("listen=8080 workers=4"); /* bug: the previous config leaks */
}

int main(void)
{
    const char *lines[] = { "GET /index.html", "GET /about", "POST /login" };
    load_config();
    for (int round = 0; round < 100; round++)
        for (size_t i = 0; i < sizeof lines / sizeof *lines; i++)
            release_request(parse_request(lines[i]));
    load_config();
    printf("served %d requests with %s\n", 300, config);
    free(config);
    return 0;
}
