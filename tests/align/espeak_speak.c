/* Speech from a second, unrelated engine for the align tests: Debian's espeak-ng (formant
 * synthesis, not Piper) speaks TEXT at RATE words per minute into OUT (16-bit mono WAV) and
 * prints its own timing on stdout, one event a line:
 *
 *     phoneme MS IPA        a phoneme starts MS ms into the audio
 *     word MS POS LEN       a word starts (POS: 1-based character of TEXT, LEN characters)
 *     end MS                the audio ends
 *
 * Built by services/align/tests/accuracy.rs with `cc ... -lespeak-ng` (libespeak-ng-dev).
 * usage: espeak_speak TEXT RATE OUT.wav */
#include <espeak-ng/speak_lib.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static short *samples;
static size_t count, capacity;

static int on_synth(short *wav, int n, espeak_EVENT *events) {
    if (wav && n > 0) {
        if (count + n > capacity) {
            capacity = (count + n) * 2;
            samples = realloc(samples, capacity * sizeof(short));
            if (!samples) return 1;
        }
        memcpy(samples + count, wav, n * sizeof(short));
        count += n;
    }
    for (; events && events->type != espeakEVENT_LIST_TERMINATED; events++) {
        switch (events->type) {
        case espeakEVENT_PHONEME:
            printf("phoneme %d %s\n", events->audio_position, events->id.string);
            break;
        case espeakEVENT_WORD:
            printf("word %d %d %d\n", events->audio_position, events->text_position, events->length);
            break;
        default:
            break;
        }
    }
    return 0;
}

static void put32(FILE *f, uint32_t v) { fwrite(&v, 4, 1, f); }
static void put16(FILE *f, uint16_t v) { fwrite(&v, 2, 1, f); }

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: espeak_speak TEXT RATE OUT.wav\n");
        return 2;
    }
    int rate = espeak_Initialize(AUDIO_OUTPUT_SYNCHRONOUS, 200, NULL,
                                 espeakINITIALIZE_PHONEME_EVENTS | espeakINITIALIZE_PHONEME_IPA);
    if (rate <= 0 || espeak_SetVoiceByName("en-us") != EE_OK) {
        fprintf(stderr, "espeak-ng did not start\n");
        return 1;
    }
    espeak_SetParameter(espeakRATE, atoi(argv[2]), 0);
    espeak_SetSynthCallback(on_synth);
    espeak_Synth(argv[1], strlen(argv[1]) + 1, 0, POS_CHARACTER, 0, espeakCHARS_UTF8, NULL, NULL);
    espeak_Synchronize();
    printf("end %zu\n", count * 1000 / rate);
    FILE *f = fopen(argv[3], "wb");
    if (!f) return 1;
    fwrite("RIFF", 1, 4, f); put32(f, 36 + count * 2); fwrite("WAVEfmt ", 1, 8, f);
    put32(f, 16); put16(f, 1); put16(f, 1); put32(f, rate); put32(f, rate * 2); put16(f, 2);
    put16(f, 16); fwrite("data", 1, 4, f); put32(f, count * 2);
    fwrite(samples, 2, count, f);
    fclose(f);
    return 0;
}
