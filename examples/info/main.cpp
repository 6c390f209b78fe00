// SPDX-License-Identifier: MIT
// qmix-info: prints a whisper ggml model's hyper-parameters, its tensors and totals per type.

#include <cstring>
#include <exception>
#include <iostream>

#include "qmix/whisper/info.hpp"
#include "qmix/whisper/model_file.hpp"

int main(int argc, char** argv) {
    if (argc < 2 || std::strcmp(argv[1], "-h") == 0 || std::strcmp(argv[1], "--help") == 0) {
        (argc < 2 ? std::cerr : std::cout)
            << "usage: qmix-info MODEL.bin [MODEL.bin...]\n"
               "Prints each model's hyper-parameters, tensor table and totals per type.\n";
        return argc < 2 ? 2 : 0;
    }
    int status = 0;
    for (int i = 1; i < argc; ++i) {
        try {
            const qmix::whisper::model_file model(argv[i]);
            if (i > 1) std::cout << '\n';
            qmix::whisper::print_model_info(std::cout, model);
        } catch (const std::exception& e) {
            std::cout.flush();
            std::cerr << "qmix-info: " << e.what() << '\n';
            status = 1;
        }
    }
    return status;
}
